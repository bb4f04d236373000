"""Module arguments against the module's schema: at load time and after templating.

At load time (before anything runs) unknown arguments, missing required ones,
bad choices and wrong types are reported, except for values that are
templates: those are checked again once rendered, per host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hlplay.errors import did_you_mean
from hlplay.inventory.names import type_name
from hlplay.modules.base import Arg, ArgError, Module, check_choices, coerce
from hlplay.templating.templar import has_template

# ``default(omit)`` renders to this; arguments with it are dropped, as in Ansible.
OMIT = "__hlplay_omit_place_holder__"


class ArgsError(ArgError):
    """Bad arguments; ``arg`` names the offending argument, when there is one."""

    def __init__(self, message: str, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


def split_words(text: str) -> list[str]:
    """Split on whitespace outside quotes and templates, keeping each word's raw text."""
    words: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        pair = text[i : i + 2]
        if quote is None and pair in ("{{", "{%", "{#"):
            depth += 1
            cur.append(pair)
            i += 2
            continue
        if quote is None and depth and pair in ("}}", "%}", "#}"):
            depth -= 1
            cur.append(pair)
            i += 2
            continue
        if quote is not None:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < n:
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"" and not depth:
            quote = c
            cur.append(c)
        elif c.isspace() and not depth:
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if quote is not None:
        raise ArgsError(f"unbalanced quote in {text!r}")
    if cur:
        words.append("".join(cur))
    return words


def _unquote(raw: str) -> str:
    """Strip one pair of quotes around a whole value (``msg="a b"``), as Ansible does."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        if raw[0] == '"':
            inner = inner.replace('\\"', '"').replace("\\\\", "\\")
        return inner
    return raw


def _names(module: type[Module]) -> dict[str, str]:
    """Every accepted spelling (aliases included) to the canonical argument name."""
    out: dict[str, str] = {}
    for name, spec in module.args.items():
        out[name] = name
        for alias in spec.aliases:
            out[alias] = name
    return out


def parse_free_form(module: type[Module], text: str) -> dict[str, Any]:
    """``command: ls -l chdir=/tmp`` → {cmd: "ls -l", chdir: "/tmp"}; ``k=v`` pairs otherwise."""
    names = _names(module)
    out: dict[str, Any] = {}
    rest: list[str] = []
    last: str | None = None
    for word in split_words(text):
        key, eq, value = word.partition("=")
        if eq and key in names and key != module.free_form:
            last = names[key]
            out[last] = _unquote(value)
        elif module.free_form is not None:
            rest.append(word)
        elif eq and key.isidentifier() and module.open_args:
            last = key
            out[key] = _unquote(value)
        elif last is not None and not eq:
            # `msg=hello world`: a bare word continues the previous value
            out[last] = f"{out[last]} {_unquote(word)}"
        else:
            raise ArgsError(
                f"module '{module.name}' takes key=value arguments or a mapping, got {word!r}"
            )
    if module.free_form is not None and rest:
        out[module.free_form] = " ".join(rest)
    return out


def normalize(module: type[Module], raw: Any) -> dict[str, Any]:
    """Raw task arguments as a mapping with canonical argument names."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return parse_free_form(module, raw)
    if not isinstance(raw, Mapping):
        kind = "a string or a mapping" if module.free_form else "a mapping"
        raise ArgsError(f"arguments of '{module.name}' must be {kind}, got {type_name(raw)}")
    names = _names(module)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = names.get(key)
        if canonical is None:
            if module.open_args:
                out[key] = value
                continue
            hint = did_you_mean(str(key), list(names))
            known = ", ".join(sorted(module.args)) or "none"
            raise ArgsError(
                f"unknown argument '{key}' for module '{module.name}'{hint}"
                + ("" if hint else f" (arguments: {known})"),
                arg=str(key),
            )
        if canonical in out:
            raise ArgsError(f"argument '{canonical}' given twice (alias '{key}')", arg=str(key))
        out[canonical] = value
    return out


def _check_one(name: str, spec: Arg, value: Any) -> Any:
    value = coerce(name, spec, value)
    check_choices(name, spec, value)
    return value


def validate_static(module: type[Module], args: Mapping[str, Any]) -> None:
    """Load-time checks: required arguments present, non-templated values typed."""
    for name, spec in module.args.items():
        if spec.required and name not in args:
            raise ArgsError(f"module '{module.name}' requires argument '{name}'", arg=None)
    for name, value in args.items():
        found = module.args.get(name)
        if found is None or has_template(value):
            continue
        try:
            _check_one(name, found, value)
        except ArgError as exc:
            raise ArgsError(str(exc), arg=name) from None
    _check_together(module, args)


def _check_together(module: type[Module], args: Mapping[str, Any]) -> None:
    """A module's own checks across its arguments: an optional ``check_args``
    classmethod raising ArgError (templated values are still strings here at
    load time, so it must leave those alone)."""
    hook = getattr(module, "check_args", None)
    if hook is None:
        return
    try:
        hook(args)
    except ArgError as exc:
        raise ArgsError(str(exc), arg=getattr(exc, "arg", None)) from None


def finalize(module: type[Module], rendered: Mapping[str, Any]) -> dict[str, Any]:
    """Rendered arguments: omitted ones dropped, types coerced, defaults filled in."""
    out: dict[str, Any] = {}
    for name, value in rendered.items():
        if isinstance(value, str) and value == OMIT:
            continue
        spec = module.args.get(name)
        out[name] = _check_one(name, spec, value) if spec is not None else value
    for name, spec in module.args.items():
        if name not in out or out[name] is None:
            if spec.required:
                raise ArgsError(f"module '{module.name}' requires argument '{name}'", arg=name)
            if name not in out:
                default = spec.default
                out[name] = list(default) if isinstance(default, list) else default
    _check_together(module, out)
    return out
