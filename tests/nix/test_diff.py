"""The nvd-style closure diff: text, JSON and summary, on made-up and real closures."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from diff_scenarios import Scenarios, build_scenarios

import realparts
from hlplay.cli.diff_paths import diff_paths_command, diff_two, looks_like_path
from hlplay.errors import HlplayError
from hlplay.nix.closure import Closure, ClosureError
from hlplay.nix.diff import ClosureDiff, diff_closures, diff_paths, diff_paths_async
from hlplay.nix.render import render_bytes

_n = 0


def sp(name: str) -> str:
    """A fresh store path for ``name`` (each call a different hash)."""
    global _n
    _n += 1
    digest = f"{_n:032d}".replace("e", "0")
    return f"/nix/store/{digest}-{name}"


def make(
    root: str,
    paths: dict[str, int],
    *,
    selected: list[str] | None = None,
    root_refs: list[str] | None = None,
) -> Closure:
    """A closure of ``paths`` (with ``root``); ``selected`` are the sw references."""
    sizes = {root: 100, **paths}
    sw = None
    if selected is not None:
        sw = next(p for p in paths if p.endswith("-system-path"))
    return Closure(
        root=root,
        sizes=sizes,
        root_references=frozenset(root_refs or []),
        sw=sw,
        sw_references=frozenset(selected) if selected is not None else None,
    )


OPENSSL_13, OPENSSL_14 = sp("openssl-3.0.13"), sp("openssl-3.0.14")
OPENSSL_13_BIN, OPENSSL_14_BIN = sp("openssl-3.0.13-bin"), sp("openssl-3.0.14-bin")
VIM_91, VIM_90 = sp("vim-9.1"), sp("vim-9.0")
HELLO = sp("hello-2.12")
LIBZ = sp("libz-1.2.13")
TOOL = sp("tool-1.0")
OLD = sp("oldthing-0.9")
ETC_A, ETC_B = sp("etc"), sp("etc")
SW_A, SW_B = sp("system-path"), sp("system-path")
TOP_A, TOP_B = sp("nixos-system-web1-24.05"), sp("nixos-system-web1-24.05")

BEFORE = make(
    TOP_A,
    {
        SW_A: 10,
        ETC_A: 10,
        OPENSSL_13: 3_000_000,
        OPENSSL_13_BIN: 500_000,
        VIM_91: 2_000_000,
        HELLO: 50_000,
        LIBZ: 100_000,
        OLD: 1_000,
    },
    selected=[OPENSSL_13_BIN, VIM_91, HELLO],
)
AFTER = make(
    TOP_B,
    {
        SW_B: 10,
        ETC_B: 10,
        OPENSSL_14: 3_100_000,
        OPENSSL_14_BIN: 500_000,
        VIM_90: 1_900_000,
        HELLO: 50_000,
        LIBZ: 100_000,
        TOOL: 4_000_000,
    },
    selected=[OPENSSL_14_BIN, VIM_90, LIBZ, TOOL],
)

EXPECTED_TEXT = """\
<<< before
>>> after
Version changes:
[U*]  #1  openssl  3.0.13, 3.0.13-bin -> 3.0.14, 3.0.14-bin
[D*]  #2  vim      9.1 -> 9.0
Selection state changes:
[C-]  #1  hello  2.12
[C+]  #2  libz   1.2.13
Added packages:
[A+]  #1  tool  1.0
Removed packages:
[R.]  #1  oldthing  0.9
Closure size: 9 -> 9 (7 paths added, 7 paths removed, delta +0, disk usage +3.8MiB)
"""


def test_text_is_nvd_line_for_line() -> None:
    diff = diff_closures(BEFORE, AFTER, before_label="before", after_label="after")
    assert diff.render_text() == EXPECTED_TEXT
    assert diff.render_text(header=False) == EXPECTED_TEXT.split("\n", 2)[2]


def test_labels_default_to_the_roots() -> None:
    text = diff_closures(BEFORE, AFTER).render_text()
    assert text.startswith(f"<<< {TOP_A}\n>>> {TOP_B}\n")


def test_colour_only_adds_escapes() -> None:
    diff = diff_closures(BEFORE, AFTER, before_label="before", after_label="after")
    coloured = diff.render_text(color=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == EXPECTED_TEXT
    # The changed part of a version is highlighted from the start of its number.
    assert "\x1b[33m9.\x1b[31m1\x1b[0m -> \x1b[33m9.\x1b[32m0" in coloured


def test_identical_closures() -> None:
    diff = diff_closures(BEFORE, BEFORE, before_label="a", after_label="a")
    assert diff.render_text() == (
        "<<< a\n>>> a\n"
        "No version or selection state changes.\n"
        "Closure size: 9 -> 9 (0 paths added, 0 paths removed, delta +0, disk usage +0B)\n"
    )
    assert diff.is_empty and not diff.has_package_changes
    assert diff.summary() == "no changes"
    assert diff.to_json()["empty"] is True


def test_rebuilt_paths_without_version_changes_are_not_empty() -> None:
    kept = {p: s for p, s in BEFORE.sizes.items() if p not in (TOP_A, ETC_A)}
    after = Closure(
        root=TOP_B,
        sizes={**kept, TOP_B: 100, ETC_B: 12},
        root_references=BEFORE.root_references,
        sw=BEFORE.sw,
        sw_references=BEFORE.sw_references,
    )
    diff = diff_closures(BEFORE, after)
    assert not diff.has_package_changes and not diff.is_empty
    assert "No version or selection state changes." in diff.render_text()
    assert diff.summary() == "0 upgraded, 0 added, 0 removed, 2 paths rebuilt, +2B"


def test_summary() -> None:
    diff = diff_closures(BEFORE, AFTER)
    assert diff.summary() == (
        "1 upgraded, 1 downgraded, 1 added, 1 removed, 2 selection changes, +3.8MiB"
    )


def test_json_schema() -> None:
    data = diff_closures(BEFORE, AFTER, before_label="before", after_label="after").to_json()
    json.dumps(data)  # plain data only
    assert data["schema"] == "hlplay.closure-diff/1"
    assert data["before"] == {
        "root": TOP_A,
        "label": "before",
        "paths": 9,
        "disk_usage_bytes": sum(BEFORE.sizes.values()),
    }
    assert data["changes"][0] == {
        "pname": "openssl",
        "state": "U",
        "selection": "*",
        "before": ["3.0.13", "3.0.13-bin"],
        "after": ["3.0.14", "3.0.14-bin"],
        "size_delta_bytes": 100_000,
    }
    assert data["added"] == [
        {"pname": "tool", "selection": "+", "versions": ["1.0"], "size_bytes": 4_000_000}
    ]
    assert data["removed"] == [
        {"pname": "oldthing", "selection": ".", "versions": ["0.9"], "size_bytes": 1_000}
    ]
    assert data["selection"] == [
        {"pname": "hello", "selection": "-", "versions": ["2.12"]},
        {"pname": "libz", "selection": "+", "versions": ["1.2.13"]},
    ]
    assert data["closure"] == {
        "before": 9,
        "after": 9,
        "added": 7,
        "removed": 7,
        "delta": 0,
        "disk_usage_delta_bytes": AFTER.disk_usage - BEFORE.disk_usage,
    }
    assert data["empty"] is False and data["summary"].startswith("1 upgraded")


def test_json_round_trip() -> None:
    diff = diff_closures(BEFORE, AFTER, before_label="before", after_label="after")
    again = ClosureDiff.from_json(json.loads(json.dumps(diff.to_json())))
    assert again.render_text() == diff.render_text()
    assert again.to_json() == diff.to_json()
    with pytest.raises(HlplayError, match="not a closure diff"):
        ClosureDiff.from_json({"schema": "something/else"})
    with pytest.raises(HlplayError, match="not a closure diff"):
        ClosureDiff.from_json({"schema": "hlplay.closure-diff/1"})


def test_changed_repeated_and_versionless_packages() -> None:
    a1, a2, b1 = sp("multi-1.0"), sp("multi-2.0"), sp("multi-1.5")
    b2, b3 = sp("multi-3.0"), sp("multi-3.0")
    u1, u2 = sp("units"), sp("units")
    before = make(sp("top"), {a1: 1, a2: 1, u1: 1})
    after = make(sp("top"), {b1: 1, b2: 1, b3: 1, u2: 1})
    diff = diff_closures(before, after, before_label="a", after_label="b")
    assert diff.render_text().splitlines()[2:4] == [
        "Version changes:",
        "[C.]  #1  multi  1.0, 2.0 -> 1.5, 3.0 x2",
    ]
    assert diff.changes[0].before == ("1.0", "2.0")
    # A versionless package present on one side only shows <none>.
    only = diff_closures(make(sp("top"), {}), make(sp("top"), {u1: 1}))
    assert "[A.]  #1  units  <none>" in only.render_text()


def test_selection_uses_root_references_unless_both_have_sw() -> None:
    top_a, top_b = sp("top-1"), sp("top-1")
    before = make(top_a, {HELLO: 1, VIM_91: 1}, root_refs=[HELLO])
    after = make(top_b, {HELLO: 1, VIM_91: 1}, root_refs=[VIM_91])
    diff = diff_closures(before, after)
    assert [(r.pname, r.selection) for r in diff.selection] == [("hello", "-"), ("vim", "+")]


def test_row_numbers_are_padded_to_the_section_size() -> None:
    paths = {sp(f"pkg{i:02d}-1.0"): 1 for i in range(12)}
    diff = diff_closures(make(sp("top"), {}), make(sp("top"), paths))
    lines = diff.render_text().splitlines()
    assert lines[3] == "[A.]  #01  pkg00  1.0"
    assert lines[14] == "[A.]  #12  pkg11  1.0"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "+0B"),
        (512, "+512B"),
        (-1023, "-1,023B"),
        (1024, "+1.0KiB"),
        (3_250_585, "+3.1MiB"),
        (-3_250_585, "-3.1MiB"),
        (5 * 1024**3, "+5.0GiB"),
        (1536 * 1024**4, "+1.5PiB"),
    ],
)
def test_render_bytes(size: int, text: str) -> None:
    assert render_bytes(size) == text


def test_looks_like_path() -> None:
    assert looks_like_path("/nix/store/x-y")
    assert looks_like_path("./result")
    assert looks_like_path("system-41-link")
    assert looks_like_path("/nix/var/nix/profiles/system")
    assert not looks_like_path("tier=test")
    assert not looks_like_path("web1")
    assert not looks_like_path("~web[0-9]+")
    assert looks_like_path("~")


# --- real Nix ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    realparts.require(realparts.nix_available(), "nix")
    return build_scenarios(tmp_path_factory.mktemp("diff-scenarios"))


def rows(diff: ClosureDiff) -> list[str]:
    """The package rows of the text, without header and closing line."""
    return diff.render_text(header=False).splitlines()[:-1]


def test_real_upgrade(scen: Scenarios) -> None:
    diff = diff_paths(scen["base"], scen["upgrade"])
    assert rows(diff) == [
        "Version changes:",
        "[U*]  #1  curl     8.5.0 -> 8.6.0",
        "[U.]  #2  openssl  3.0.13, 3.0.13-bin -> 3.0.14, 3.0.14-bin",
    ]


def test_real_downgrade(scen: Scenarios) -> None:
    assert rows(diff_paths(scen["base"], scen["downgrade"])) == [
        "Version changes:",
        "[D*]  #1  vim  9.1 -> 9.0",
    ]


def test_real_added(scen: Scenarios) -> None:
    diff = diff_paths(scen["base"], scen["added"])
    assert rows(diff) == [
        "Added packages:",
        "[A.]  #1  newlib  0.1",
        "[A+]  #2  tool    1.0",
    ]
    assert diff.delta == 2 and diff.disk_usage_delta > 0


def test_real_removed(scen: Scenarios) -> None:
    diff = diff_paths(scen["base"], scen["removed"])
    assert rows(diff) == ["Removed packages:", "[R-]  #1  hello  2.12"]
    assert diff.delta == -1 and diff.disk_usage_delta < 0


def test_real_selection_changes(scen: Scenarios) -> None:
    assert rows(diff_paths(scen["base"], scen["selection"])) == [
        "Selection state changes:",
        "[C-]  #1  hello  2.12",
        "[C+]  #2  libz   1.2.13",
    ]


def test_real_changed(scen: Scenarios) -> None:
    assert rows(diff_paths(scen["base"], scen["changed"])) == [
        "Version changes:",
        "[C.]  #1  multi  1.0, 2.0 -> 1.5, 3.0",
    ]


def test_real_identical_and_rebuilt(scen: Scenarios) -> None:
    same = diff_paths(scen["base"], scen["identical"])
    assert rows(same) == ["No version or selection state changes."]
    assert same.is_empty
    assert same.render_text().endswith(
        "Closure size: 11 -> 11 (0 paths added, 0 paths removed, delta +0, disk usage +0B)\n"
    )
    rebuilt = diff_paths(scen["base"], scen["rebuilt"])
    assert rows(rebuilt) == ["No version or selection state changes."]
    assert not rebuilt.is_empty and rebuilt.paths_added == rebuilt.paths_removed == 2


def test_real_everything_and_reverse(scen: Scenarios) -> None:
    forward = diff_paths(scen["base"], scen["everything"])
    assert [(r.state, r.selection, r.pname) for r in forward.changes] == [
        ("U", "*", "curl"),
        ("C", ".", "multi"),
        ("U", ".", "openssl"),
        ("D", "*", "vim"),
    ]
    back = diff_paths(scen["everything"], scen["base"])
    assert [(r.state, r.selection, r.pname) for r in back.changes] == [
        ("D", "*", "curl"),
        ("C", ".", "multi"),
        ("D", ".", "openssl"),
        ("U", "*", "vim"),
    ]
    assert [(r.pname, r.selection) for r in back.removed] == [("newlib", "."), ("tool", "-")]
    assert back.disk_usage_delta == -forward.disk_usage_delta


def test_real_profile_generations(scen: Scenarios) -> None:
    profile = str(scen.profile)
    by_link = diff_paths(profile + "-1-link", profile)
    assert by_link.before_root == scen["base"] and by_link.after_root == scen["upgrade"]
    assert by_link.before_label == profile + "-1-link"
    assert rows(by_link) == rows(diff_paths(scen["base"], scen["upgrade"]))


async def test_real_diff_async(scen: Scenarios) -> None:
    diff = await diff_paths_async(scen["base"], scen["downgrade"])
    assert diff.summary() == "0 upgraded, 1 downgraded, 0 added, 0 removed, +0B"


def test_cli_text_and_json(scen: Scenarios) -> None:
    runner = CliRunner()
    res = runner.invoke(diff_paths_command, [scen["base"], scen["upgrade"]])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[:3] == [
        f"<<< {scen['base']}",
        f">>> {scen['upgrade']}",
        "Version changes:",
    ]
    assert "\x1b[" not in res.output  # not a terminal
    res = runner.invoke(diff_paths_command, [scen["base"], scen["upgrade"], "--color", "always"])
    assert "\x1b[" in res.output
    res = runner.invoke(diff_paths_command, [scen["base"], scen["upgrade"], "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert [c["pname"] for c in data["changes"]] == ["curl", "openssl"]


def test_diff_two_for_the_hlplay_diff_command(
    scen: Scenarios, capsys: pytest.CaptureFixture[str]
) -> None:
    assert diff_two(str(scen.profile) + "-1-link", str(scen.profile), False) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"<<< {scen.profile}-1-link\n>>> {scen.profile}\n")
    assert "[U*]  #1  curl     8.5.0 -> 8.6.0" in out


def test_cli_errors_are_one_line(scen: Scenarios, tmp_path: object) -> None:
    with pytest.raises(ClosureError) as exc:
        diff_two(scen["base"], "/nonexistent/result", False)
    assert str(exc.value) == "no such file or store path: /nonexistent/result"
    with pytest.raises(ClosureError, match="is not valid"):
        diff_two(scen["base"], "/nix/store/00000000000000000000000000000000-gone-1.0", False)
