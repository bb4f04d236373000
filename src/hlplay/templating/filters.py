"""The Jinja2 filters and tests Ansible users reach for.

Everything here is pure data manipulation: no file, process or network access,
so adding them to the sandboxed environment keeps the sandbox closed.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from hlplay.errors import HlplayError


class FilterError(HlplayError):
    """A filter was used wrongly (bad input type, bad regular expression)."""


_TRUE_STRINGS = frozenset(("yes", "on", "1", "true", "y", "t"))


def to_bool(value: Any) -> bool:
    """Ansible's ``bool`` filter: yes/on/1/true are true, anything else false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in _TRUE_STRINGS


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def to_json(value: Any, indent: int | None = None, sort_keys: bool = False, **kw: Any) -> str:
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=_json_default, **kw)


def to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True, **kw: Any) -> str:
    return json.dumps(
        value, indent=indent, sort_keys=sort_keys, separators=(",", ": "), default=_json_default
    )


def from_json(value: Any) -> Any:
    try:
        return json.loads(str(value))
    except ValueError as exc:
        raise FilterError(f"from_json: invalid JSON: {exc}") from None


def _plain(value: Any) -> Any:
    """Plain Python data for yaml.safe_dump (YMap/YList and tuples included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def to_yaml(value: Any, indent: int = 2, **kw: Any) -> str:
    return yaml.safe_dump(
        _plain(value), indent=indent, allow_unicode=True, default_flow_style=None, sort_keys=False
    )


def to_nice_yaml(value: Any, indent: int = 4, **kw: Any) -> str:
    return yaml.safe_dump(
        _plain(value), indent=indent, allow_unicode=True, default_flow_style=False, sort_keys=False
    )


def from_yaml(value: Any) -> Any:
    try:
        return yaml.safe_load(str(value))
    except yaml.YAMLError as exc:
        raise FilterError(f"from_yaml: invalid YAML: {exc}") from None


def _flags(ignorecase: bool, multiline: bool) -> int:
    flags = 0
    if ignorecase:
        flags |= re.IGNORECASE
    if multiline:
        flags |= re.MULTILINE
    return flags


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise FilterError(f"invalid regular expression {pattern!r}: {exc}") from None


def regex_search(
    value: Any, regex: str, *args: str, ignorecase: bool = False, multiline: bool = False
) -> Any:
    """First match (or the groups named by ``'\\1'``/``'\\g<name>'`` args), None if no match."""
    match = _compile(regex, _flags(ignorecase, multiline)).search(str(value))
    if match is None:
        return None
    if not args:
        return match.group()
    out: list[Any] = []
    for arg in args:
        if arg.startswith("\\g<") and arg.endswith(">"):
            out.append(match.group(arg[3:-1]))
        elif arg.startswith("\\") and arg[1:].isdigit():
            out.append(match.group(int(arg[1:])))
        else:
            raise FilterError(f"regex_search: unknown argument {arg!r}")
    return out


def regex_replace(
    value: Any,
    pattern: str = "",
    replacement: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    count: int = 0,
) -> str:
    return _compile(pattern, _flags(ignorecase, multiline)).sub(
        replacement, str(value), count=count
    )


def regex_findall(
    value: Any, regex: str, ignorecase: bool = False, multiline: bool = False
) -> list[Any]:
    return _compile(regex, _flags(ignorecase, multiline)).findall(str(value))


def regex_escape(value: Any) -> str:
    return re.escape(str(value))


def _merge(a: Any, b: Any, recursive: bool, list_merge: str) -> Any:
    if isinstance(a, Mapping) and isinstance(b, Mapping) and recursive:
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v, recursive, list_merge) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        if list_merge == "append":
            return a + b
        if list_merge == "prepend":
            return b + a
        if list_merge == "append_rp":
            return [x for x in a if x not in b] + b
        if list_merge == "prepend_rp":
            return b + [x for x in a if x not in b]
        if list_merge == "keep":
            return a
    return b


def combine(*terms: Any, recursive: bool = False, list_merge: str = "replace") -> dict[str, Any]:
    """Merge mappings left to right (``recursive`` merges nested mappings)."""
    flat: list[Any] = []
    for t in terms:
        flat.extend(t if isinstance(t, list) else [t])
    out: dict[str, Any] = {}
    for t in flat:
        if not isinstance(t, Mapping):
            raise FilterError(f"combine expects mappings, got {type(t).__name__}")
        merged = _merge(out, t, recursive, list_merge) if recursive else {**out, **t}
        out = dict(merged)
    return out


def dict2items(
    value: Any, key_name: str = "key", value_name: str = "value"
) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise FilterError(f"dict2items expects a mapping, got {type(value).__name__}")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: Any, key_name: str = "key", value_name: str = "value") -> dict[Any, Any]:
    if not isinstance(value, Iterable) or isinstance(value, (str, Mapping)):
        raise FilterError("items2dict expects a list of mappings")
    out: dict[Any, Any] = {}
    for item in value:
        if not isinstance(item, Mapping) or key_name not in item or value_name not in item:
            raise FilterError(f"items2dict: each item needs '{key_name}' and '{value_name}'")
        out[item[key_name]] = item[value_name]
    return out


def mandatory(value: Any, msg: str | None = None) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        if msg:
            raise FilterError(msg)
        # rendering the undefined value raises the error that names the variable
        str(value)
    return value


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def flatten(value: Any, levels: int | None = None) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)) and (levels is None or levels > 0):
            out.extend(flatten(item, None if levels is None else levels - 1))
        elif item is not None:
            out.append(item)
    return out


def b64encode(value: Any, encoding: str = "utf-8") -> str:
    return base64.b64encode(str(value).encode(encoding)).decode("ascii")


def b64decode(value: Any, encoding: str = "utf-8") -> str:
    return base64.b64decode(str(value)).decode(encoding)


def splitext(value: Any) -> tuple[str, str]:
    return posixpath.splitext(str(value))


def zip_filter(*lists: Any) -> list[list[Any]]:
    return [list(t) for t in zip(*lists, strict=False)]


def extract(item: Any, container: Any, morekeys: Any = None) -> Any:
    """``['a', 'b'] | map('extract', hostvars, 'tier')``: look each item up in a container."""
    value = container[item]
    keys = [] if morekeys is None else (morekeys if isinstance(morekeys, list) else [morekeys])
    for key in keys:
        value = value[key]
    return value


def _unique(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def union(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    return _unique([*a, *b])


def intersect(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    bl = list(b)
    return _unique(x for x in a if x in bl)


def difference(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    bl = list(b)
    return _unique(x for x in a if x not in bl)


def symmetric_difference(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    al, bl = list(a), list(b)
    return _unique([*(x for x in al if x not in bl), *(x for x in bl if x not in al)])


def hash_filter(value: Any, algorithm: str = "sha1") -> str:
    import hashlib

    if algorithm not in hashlib.algorithms_available:
        raise FilterError(f"hash: unknown algorithm {algorithm!r}")
    return hashlib.new(algorithm, str(value).encode()).hexdigest()


def type_debug(value: Any) -> str:
    return type(value).__name__


def quote(value: Any) -> str:
    return shlex.quote(str(value))


FILTERS: dict[str, Callable[..., Any]] = {
    "bool": to_bool,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": from_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "regex_search": regex_search,
    "regex_replace": regex_replace,
    "regex_findall": regex_findall,
    "regex_escape": regex_escape,
    "combine": combine,
    "dict2items": dict2items,
    "items2dict": items2dict,
    "basename": lambda v: posixpath.basename(str(v)),
    "dirname": lambda v: posixpath.dirname(str(v)),
    "splitext": splitext,
    "mandatory": mandatory,
    "ternary": ternary,
    "flatten": flatten,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "zip": zip_filter,
    "type_debug": type_debug,
    "extract": extract,
    "union": union,
    "intersect": intersect,
    "difference": difference,
    "symmetric_difference": symmetric_difference,
    "hash": hash_filter,
    "quote": quote,
}


# --- tests -------------------------------------------------------------------


def _result_failed(value: Any) -> bool:
    if not isinstance(value, Mapping):
        raise FilterError("the 'failed'/'succeeded' tests expect a registered result")
    return bool(value.get("failed", False))


def _version_key(v: str) -> list[tuple[int, Any]]:
    parts = re.split(r"[.\-+_]", str(v))
    return [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p]


def version_compare(value: Any, version: Any, operator: str = "eq") -> bool:
    a, b = _version_key(str(value)), _version_key(str(version))
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda x, y: x == y,
        "==": lambda x, y: x == y,
        "ne": lambda x, y: x != y,
        "!=": lambda x, y: x != y,
        "lt": lambda x, y: x < y,
        "<": lambda x, y: x < y,
        "le": lambda x, y: x <= y,
        "<=": lambda x, y: x <= y,
        "gt": lambda x, y: x > y,
        ">": lambda x, y: x > y,
        "ge": lambda x, y: x >= y,
        ">=": lambda x, y: x >= y,
    }
    if operator not in ops:
        raise FilterError(f"version test: unknown operator {operator!r}")
    return ops[operator](a, b)


def _match(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return _compile(pattern, _flags(ignorecase, multiline)).match(str(value)) is not None


def _search(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return _compile(pattern, _flags(ignorecase, multiline)).search(str(value)) is not None


def _subset(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(x in b for x in a)


TESTS: dict[str, Callable[..., bool]] = {
    "failed": _result_failed,
    "failure": _result_failed,
    "succeeded": lambda v: not _result_failed(v),
    "success": lambda v: not _result_failed(v),
    "successful": lambda v: not _result_failed(v),
    "changed": lambda v: bool(isinstance(v, Mapping) and v.get("changed", False)),
    "change": lambda v: bool(isinstance(v, Mapping) and v.get("changed", False)),
    "skipped": lambda v: bool(isinstance(v, Mapping) and v.get("skipped", False)),
    "skip": lambda v: bool(isinstance(v, Mapping) and v.get("skipped", False)),
    "match": _match,
    "search": _search,
    "regex": _search,
    "truthy": lambda v: bool(v),
    "falsy": lambda v: not v,
    "subset": _subset,
    "superset": lambda a, b: _subset(b, a),
    "contains": lambda seq, v: v in seq,
    "version": version_compare,
    "version_compare": version_compare,
}
