"""Hostile input meets bounds, not a hang: YAML size, aliases and depth, files that are
not regular, task files importing themselves, deep blocks, renders stopped by a signal."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hlplay.errors import HlplayError, PlaybookError
from hlplay.playbook.loader import MAX_BLOCK_DEPTH, load_playbook
from hlplay.templating.templar import (
    Templar,
    TemplateFailure,
    TemplateInterrupted,
    Vars,
    interrupt_render,
    template_keys,
)
from hlplay.yamlsrc import (
    ALIAS_ENVVAR,
    MAX_YAML_DEPTH,
    SIZE_ENVVAR,
    load_yaml_file,
    load_yaml_text,
)

SPIN = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def _laughs(levels: int) -> str:
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for n in range(1, levels):
        text += f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n"
    return text


# ---- YAML --------------------------------------------------------------------------------


def test_a_billion_laughs_is_refused_where_the_aliases_pass_the_budget() -> None:
    start = time.monotonic()
    with pytest.raises(HlplayError, match=r"aliases expand to more than 1000000 nodes") as got:
        load_yaml_text(_laughs(9), "laughs.yml")
    assert time.monotonic() - start < 10
    assert str(got.value).startswith("laughs.yml:")
    assert ALIAS_ENVVAR in str(got.value)


def test_aliases_within_the_budget_still_share_their_data() -> None:
    data = load_yaml_text(_laughs(4), "few.yml")  # 9**4 items: well within
    assert len(data["a3"]) == 9 and data["a3"][0] is data["a2"]
    merged = load_yaml_text("base: &b {x: 1, y: 2}\nhost: {<<: *b, y: 3}\n", "m.yml")
    assert merged["host"] == {"x": 1, "y": 3}


def test_aliases_of_a_long_string_count_its_length() -> None:
    text = "x" * 100_000
    many = f"s: &s '{text}'\nl: [{', '.join(['*s'] * 1000)}]\n"  # 100 MB of text in all
    with pytest.raises(HlplayError, match=r"long.yml:1:4: aliases expand .* characters of text"):
        load_yaml_text(many, "long.yml")
    few = f"s: &s '{text}'\nl: [*s, *s]\nm: {{a: *s, b: *s}}\n"
    data = load_yaml_text(few, "few.yml")
    assert data["l"][1] is data["m"]["b"] is data["s"]


def test_the_alias_budget_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALIAS_ENVVAR, "100")
    with pytest.raises(HlplayError, match="more than 100 nodes"):
        load_yaml_text(_laughs(3), "small.yml")
    monkeypatch.setenv(ALIAS_ENVVAR, "lots")
    with pytest.raises(HlplayError, match=f"{ALIAS_ENVVAR} must be a whole number"):
        load_yaml_text("a: 1\n", "x.yml")


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(HlplayError, match=r"^c.yml:1:4: an alias refers to a node that contains"):
        load_yaml_text("a: &a [1, {b: *a}]\n", "c.yml")


def test_nesting_is_bounded_also_through_aliases() -> None:
    ok = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH + "\n"
    assert load_yaml_text(ok, "ok.yml")
    deep = "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n"
    with pytest.raises(HlplayError, match=rf"^deep.yml:1:201: nested deeper than {MAX_YAML_DEPTH}"):
        load_yaml_text(deep, "deep.yml")
    half = MAX_YAML_DEPTH // 2 + 10
    chained = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    with pytest.raises(HlplayError, match="through aliases"):
        load_yaml_text(chained, "chain.yml")
    # as deep as libyaml goes builds (the playbook loader asks for it), and past it is
    # an error too, not a RecursionError
    value = load_yaml_text("[" * 1000 + "]" * 1000, "libyaml.yml", max_depth=1000)
    levels = 0
    while isinstance(value, list):
        levels, value = levels + 1, value[0] if value else None
    assert levels == 1000
    with pytest.raises(HlplayError, match="nest"):
        load_yaml_text("[" * 1001 + "]" * 1001, "libyaml.yml", max_depth=2000)


def test_a_file_over_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yml"
    path.write_text("a: " + "x" * 2000 + "\n")
    monkeypatch.setenv(SIZE_ENVVAR, "1000")
    with pytest.raises(HlplayError, match=r"big.yml: too large \(2004 bytes; the limit is 1000"):
        load_yaml_file(path)
    with pytest.raises(HlplayError, match="too large"):
        load_yaml_text("a: " + "x" * 2000, "<-e>")
    monkeypatch.delenv(SIZE_ENVVAR)
    assert load_yaml_file(path) == {"a": "x" * 2000}


def test_files_that_are_not_regular_are_refused_unopened(tmp_path: Path) -> None:
    fifo = tmp_path / "vars.yml"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(HlplayError, match=r"vars.yml: is a FIFO, not a regular file"):
        load_yaml_file(fifo)  # opening it to read would block until a writer came
    with pytest.raises(HlplayError, match=r"^/dev/zero: is a character device"):
        load_yaml_file("/dev/zero")  # would be read until memory runs out
    assert time.monotonic() - start < 5
    with pytest.raises(HlplayError, match="is a directory"):
        load_yaml_file(tmp_path)
    with pytest.raises(HlplayError, match="no such file"):
        load_yaml_file(tmp_path / "nope.yml")


def test_line_endings_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "crlf.yml"
    path.write_bytes(b"a: |\r\n  one\r\n  two\r\nb: 2\r\n")
    data = load_yaml_file(path)
    assert data == {"a": "one\ntwo\n", "b": 2}
    assert data.loc_of("b").line == 4


# ---- the playbook loader -------------------------------------------------------------------


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path / next(iter(files))


def test_a_task_file_importing_itself_names_the_chain(tmp_path: Path) -> None:
    book = _write(
        tmp_path,
        {
            "play.yml": "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n",
            "a.yml": "- debug: msg=a\n- import_tasks: b.yml\n",
            "b.yml": "- debug: msg=b\n- import_tasks: a.yml\n",
        },
    )
    with pytest.raises(PlaybookError) as got:
        load_playbook(book)
    where = tmp_path / "b.yml"
    assert str(got.value) == (
        f"{where}:2:3: import_tasks: a.yml imports itself (via a.yml -> b.yml -> a.yml)"
    )


def test_the_same_task_file_twice_in_a_row_is_no_loop(tmp_path: Path) -> None:
    book = _write(
        tmp_path,
        {
            "play.yml": "- hosts: all\n  tasks:\n"
            "    - import_tasks: common.yml\n    - import_tasks: common.yml\n",
            "common.yml": "- debug: msg=common\n",
        },
    )
    assert len(load_playbook(book).plays[0].tasks) == 2


def _nested_blocks(depth: int) -> str:
    text = "- hosts: all\n  tasks:\n"
    for level in range(depth):
        text += "  " * (2 * level + 2) + "- block:\n"
    return text + "  " * (2 * depth + 2) + "- debug: msg=deep\n"


def test_blocks_nest_up_to_the_limit_and_no_deeper(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yml"
    ok.write_text(_nested_blocks(MAX_BLOCK_DEPTH))
    assert load_playbook(ok).plays
    deep = tmp_path / "deep.yml"
    deep.write_text(_nested_blocks(400))
    with pytest.raises(PlaybookError, match=r"deep.yml:\d+:\d+: blocks nested deeper than 100"):
        load_playbook(deep)


def test_deep_values_in_a_playbook_are_an_error_with_the_line(tmp_path: Path) -> None:
    book = tmp_path / "vars.yml"
    book.write_text("- hosts: all\n  vars:\n    x: " + "[" * 300 + "]" * 300 + "\n  tasks: []\n")
    with pytest.raises(PlaybookError, match=r"vars.yml:3:\d+: nested deeper than 200 levels"):
        load_playbook(book)


# ---- renders that a signal stops -----------------------------------------------------------


@pytest.fixture
def alarm() -> Iterator[None]:
    """SIGALRM calls interrupt_render, as the CLI's SIGINT and SIGTERM handlers do."""
    old = signal.signal(signal.SIGALRM, lambda signum, frame: interrupt_render(frame))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize(
    "source",
    [SPIN, "{{ slow }}", "x{{ slow | default('') | upper }}y", "{{ [1] | map('tpl') | list }}"],
    ids=["loop", "lazy-variable", "filter", "nested-render"],
)
def test_a_signal_stops_the_render_it_interrupts(alarm: None, source: str) -> None:
    templar = Templar()
    data = {"slow": SPIN}
    scope = Vars([(data, template_keys(data)), templar.globals_layer], templar)

    def tpl(_: object) -> object:  # a filter that renders: the interrupt passes through it
        return templar.render(SPIN, scope)

    templar.env.filters["tpl"] = tpl
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    start = time.monotonic()
    with pytest.raises(TemplateInterrupted, match="interrupted while rendering") as got:
        templar.render(source, scope)
    assert time.monotonic() - start < 2
    assert source[:20] in got.value.message  # the outermost render names itself
    # nothing half-done is left behind: the variable renders again, and quickly fails again
    assert not scope._resolving and "slow" not in scope._cache
    assert templar.render("{{ 1 + 1 }}", scope) == 2


def test_interrupt_render_outside_a_render_does_nothing() -> None:
    interrupt_render(None)
    import sys

    interrupt_render(sys._getframe())


@pytest.mark.parametrize(
    ("source", "result"),
    [
        ("{{ 2 ** 10 }}", 1024),
        ("{{ 2 ** -1 }}", 0.5),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 3 * [1] }}", [1, 1, 1]),
        ("{{ 1.5 * 2 }}", 3.0),
        ("{{ (-1) ** (10 ** 12) }}", 1),
    ],
)
def test_powers_and_repeats_of_a_sane_size_work(source: str, result: object) -> None:
    templar = Templar()
    assert templar.render(source, Vars([templar.globals_layer], templar)) == result


@pytest.mark.parametrize(
    "source", ["{{ 2 ** (10 ** 7) }}", "{{ 'x' * 10 ** 10 }}", "{{ 10**9 * [0] }}"]
)
def test_powers_and_repeats_that_would_take_forever_in_c_are_refused(source: str) -> None:
    templar = Templar()
    start = time.monotonic()
    with pytest.raises(TemplateFailure, match="would be too large"):
        templar.render(source, Vars([templar.globals_layer], templar))
    assert time.monotonic() - start < 2
