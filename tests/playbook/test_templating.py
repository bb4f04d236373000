"""Templating: Ansible's rules (native types, lazy vars, filters) inside a closed sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from hlplay.playbook.templating import (
    NO_TEMPLATES,
    Templar,
    TemplateFailure,
    Vars,
    template_keys,
)


@pytest.fixture
def templar() -> Templar:
    return Templar()


def scope(templar: Templar, raw: dict[str, Any] | None = None, **templated: Any) -> Vars:
    return Vars(
        [(raw or {}, NO_TEMPLATES), (templated, template_keys(templated)), templar.globals_layer],
        templar,
    )


def test_single_expression_keeps_native_type(templar: Templar) -> None:
    v = scope(templar, {"n": 5, "xs": [1, 2], "d": {"a": 1}})
    assert templar.render("{{ n }}", v) == 5
    assert templar.render("{{ xs }}", v) == [1, 2]
    assert templar.render("  {{ d }}  ", v) == {"a": 1}
    assert templar.render("{{ n > 3 }}", v) is True
    assert templar.render("n={{ n }}", v) == "n=5"
    assert templar.render("{{ n }}{{ n }}", v) == "55"
    assert templar.render({"k": ["{{ n }}"]}, v) == {"k": [5]}


def test_variables_that_are_templates_resolve_lazily(templar: Templar) -> None:
    v = scope(templar, {"host": "web1"}, port=8080, url="http://{{ host }}:{{ port }}")
    assert templar.render("{{ url }}", v) == "http://web1:8080"
    loop = scope(templar, a="{{ b }}", b="{{ a }}")
    with pytest.raises(TemplateFailure, match="recursive loop"):
        templar.render("{{ a }}", loop)


def test_registered_data_is_never_rendered_again(templar: Templar) -> None:
    v = scope(templar, {"out": {"stdout": "{{ 7 * 6 }}"}})
    assert templar.render("{{ out.stdout }}", v) == "{{ 7 * 6 }}"


def test_undefined_is_an_error_naming_the_variable(templar: Templar) -> None:
    v = scope(templar)
    with pytest.raises(TemplateFailure, match="'missing_thing' is undefined") as info:
        templar.render("value: {{ missing_thing }}", v)
    assert info.value.undefined
    with pytest.raises(TemplateFailure, match="'missing_thing' is undefined"):
        templar.render("{{ missing_thing.attr }}", v)


def test_default_and_defined_work_on_undefined_chains(templar: Templar) -> None:
    v = scope(templar, {"d": {}})
    assert templar.render("{{ nope | default('x') }}", v) == "x"
    assert templar.render("{{ nope.deeper | d('y') }}", v) == "y"
    assert templar.render("{{ d.missing | default(3) }}", v) == 3
    assert templar.condition("nope is defined", v) is False
    assert templar.condition("nope.x is undefined", v) is True


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("'yes' | bool", True),
        ("'off' | bool", False),
        ("{'a': [1]} | to_json", '{"a": [1]}'),
        ("'{\"a\": 1}' | from_json", {"a": 1}),
        ("{'a': 1} | to_yaml", "{a: 1}\n"),
        ("'a: [1, 2]' | from_yaml", {"a": [1, 2]}),
        ("{'b': 1, 'a': 2} | to_nice_json", '{\n    "a": 2,\n    "b": 1\n}'),
        ("'release-23.11-pre' | regex_search('(\\\\d+)\\\\.(\\\\d+)')", "23.11"),
        ("'release-23.11' | regex_search('(\\\\d+)\\\\.(\\\\d+)', '\\\\2')", ["11"]),
        ("'release' | regex_search('\\\\d')", None),
        ("'a-b-c' | regex_replace('-', '_')", "a_b_c"),
        (
            "{'a': 1, 'n': {'x': 1}} | combine({'n': {'y': 2}}, recursive=true)",
            {"a": 1, "n": {"x": 1, "y": 2}},
        ),
        ("{'a': 1} | combine({'a': 2}, {'b': 3})", {"a": 2, "b": 3}),
        ("{'a': 1} | dict2items", [{"key": "a", "value": 1}]),
        ("[{'key': 'a', 'value': 1}] | items2dict", {"a": 1}),
        ("'/nix/store/abc-foo/bin/x' | basename", "x"),
        ("'/nix/store/abc-foo/bin/x' | dirname", "/nix/store/abc-foo/bin"),
        ("[3, 1, 2] | sort | first", 1),
        ("(1 == 1) | ternary('up', 'down')", "up"),
        ("'a b' | quote", "'a b'"),
        ("'2.10' is version('2.9', '>')", True),
        ("'web1' is match('web\\\\d')", True),
        ("{'failed': false, 'changed': true} is changed", True),
        ("{'failed': true} is failed", True),
    ],
)
def test_filters_and_tests(templar: Templar, expr: str, expected: Any) -> None:
    assert templar.render("{{ " + expr + " }}", scope(templar)) == expected


def test_mandatory(templar: Templar) -> None:
    with pytest.raises(TemplateFailure, match="need it"):
        templar.render("{{ x | mandatory('need it') }}", scope(templar))
    assert templar.render("{{ x | mandatory }}", scope(templar, {"x": 1})) == 1


def test_omit_and_conditions(templar: Templar) -> None:
    v = scope(templar, {"flag": "false", "n": 2})
    assert templar.condition("flag", v) is False  # the string 'false' is false, as in Ansible
    assert templar.conditions(["n > 1", True], v) is True
    assert templar.conditions(["n > 1", "n > 5"], v) is False
    assert templar.condition("{{ n == 2 }}", v) is True


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{{ lipsum.__globals__['os'].system('id') }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ xs.__class__.__base__.__subclasses__() }}",
        "{{ f.__globals__ }}",
        "{{ xs.append(1) }}",
        "{{ d.update({'a': 1}) }}",
        "{{ self.__init__.__globals__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_holds(templar: Templar, source: str) -> None:
    v = scope(templar, {"xs": [1], "d": {}, "f": lambda: None})
    with pytest.raises(TemplateFailure) as info:
        templar.render(source, v)
    assert "unsafe" in info.value.message or "undefined" in info.value.message
    assert v["xs"] == [1] and v["d"] == {}


def test_no_os_or_file_access_from_templates(templar: Templar) -> None:
    v = scope(templar)
    for source in (
        "{{ os }}",
        "{{ open('/etc/passwd') }}",
        "{{ __import__('os') }}",
        "{{ import('os') }}",
    ):
        with pytest.raises(TemplateFailure):
            templar.render(source, v)
    assert "range" in templar.env.globals  # Jinja's own harmless globals remain


def test_syntax_errors_are_failures_not_crashes(templar: Templar) -> None:
    with pytest.raises(TemplateFailure, match="syntax error"):
        templar.render("{{ 1 + }}", scope(templar))
    with pytest.raises(TemplateFailure):
        templar.render("{{ 1 / 0 }}", scope(templar))
