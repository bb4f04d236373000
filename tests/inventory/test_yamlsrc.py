"""YAML with locations: same values as PyYAML's safe loader, plus where each came from."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from hlplay.errors import HlplayError, Location
from hlplay.yamlsrc import YList, YMap, load_yaml_file, load_yaml_text

DOC = """\
int: 1
quoted: "1"
tagged: !!str 1
bool: yes
null_: ~
empty:
float: 1.5
date: 2024-01-01
list: [1, x, null, 0x1f, .inf, 'no']
base: &base {x: 1, y: 2}
alias: *base
merged: {<<: *base, y: 3}
merged_list: {<<: [{x: 1}, {x: 2, z: 4}]}
set: !!set {a, b}
block: |
  text
"""


def test_values_match_pyyaml() -> None:
    ours = load_yaml_text(DOC, "doc.yml")
    assert ours == yaml.safe_load(DOC)
    assert ours["date"] == datetime.date(2024, 1, 1)
    assert ours["alias"] is ours["base"]  # aliases share the object, as in PyYAML


def test_locations() -> None:
    data = load_yaml_text("top:\n  a: 1\n  list:\n    - x\n    - {b: 2}\n", "f.yml")
    assert isinstance(data, YMap)
    assert data.loc == Location("f.yml", 1, 1)
    top = data["top"]
    assert top.loc_of("a") == Location("f.yml", 2, 3)
    assert top.loc_of("missing") == top.loc
    seq = top["list"]
    assert isinstance(seq, YList)
    assert seq.loc_of(1) == Location("f.yml", 5, 7)
    assert seq[1].loc_of("b") == Location("f.yml", 5, 8)


def test_keys_become_strings() -> None:
    data = load_yaml_text("1: a\ntrue: b\n~: c\n1.5: d\n", "f.yml")
    assert list(data) == ["1", "true", "null", "1.5"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yml:3:1: duplicate key 'a' (first at line 1)"),
        ("a: [1\n", "f.yml:2:1: invalid YAML: "),
        ("[1]: x\n", "f.yml:1:1: mapping keys must be plain scalars"),
        (
            "a: !vault |\n  $ANSIBLE_VAULT;1.1\n",
            "f.yml:1:4: vault-encrypted values are not supported",
        ),
        ("a: !custom x\n", "f.yml:1:4: unsupported tag '!custom'"),
        ("a: {<<: 3}\n", "f.yml:1:9: a merge key (<<) needs a mapping or a list of mappings"),
        ("---\na: 1\n---\nb: 2\n", "f.yml:3:1: invalid YAML: "),
    ],
)
def test_errors_are_located(text: str, message: str) -> None:
    with pytest.raises(HlplayError) as info:
        load_yaml_text(text, "f.yml")
    assert str(info.value).startswith(message), str(info.value)


def test_files(tmp_path: Path) -> None:
    (tmp_path / "ok.yml").write_text("a: 1\n")
    assert load_yaml_file(tmp_path / "ok.yml") == {"a": 1}
    assert load_yaml_text("", "empty.yml") is None
    with pytest.raises(HlplayError, match="no such file"):
        load_yaml_file(tmp_path / "missing.yml")
    with pytest.raises(HlplayError, match="is a directory"):
        load_yaml_file(tmp_path)
