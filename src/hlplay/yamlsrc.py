"""YAML loading that keeps where every mapping, key and list item came from.

Inventory and playbook loaders need ``file:line:column`` for every error, so
mappings load as :class:`YMap` (a dict that remembers its own location and the
location of each key) and sequences as :class:`YList` (a list that remembers
each item's location). Duplicate keys are an error, not a silent overwrite.
"""

from __future__ import annotations

import gc
from pathlib import Path
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hlplay.errors import HlplayError, Location


class YMap(dict[str, Any]):
    """A mapping loaded from YAML, with its location and its keys' locations."""

    loc: Location
    key_locs: dict[str, Location]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loc = Location("<unknown>")
        self.key_locs = {}

    def loc_of(self, key: str) -> Location:
        """Where ``key`` is written, or where the mapping starts."""
        return self.key_locs.get(key, self.loc)


class YList(list[Any]):
    """A sequence loaded from YAML, with its location and each item's."""

    loc: Location
    item_locs: list[Location]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.loc = Location("<unknown>")
        self.item_locs = []

    def loc_of(self, index: int) -> Location:
        if 0 <= index < len(self.item_locs):
            return self.item_locs[index]
        return self.loc


def loc_of(value: Any, fallback: Location) -> Location:
    """Location of a loaded value, when it carries one."""
    loc = getattr(value, "loc", None)
    return loc if isinstance(loc, Location) else fallback


def _mark_loc(filename: str, node: Node) -> Location:
    mark = node.start_mark
    return Location(filename, mark.line + 1, mark.column + 1)


# The C parser (libyaml) is several times faster and still gives node marks;
# the pure-Python one is the fallback where PyYAML was built without libyaml.
if TYPE_CHECKING:
    from yaml import SafeLoader as _BaseLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STR_TAG = "tag:yaml.org,2002:str"
PLAIN_TAG = "tag:hlplay,2024:plain"  # a plain scalar whose type is not resolved yet
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"
_DEFAULT_TAGS = {ScalarNode: STR_TAG, SequenceNode: SEQ_TAG, MappingNode: MAP_TAG}
# YAML 1.1 implicit types (int, float, bool, null, timestamp…), by first character
_IMPLICIT: dict[str | None, list[tuple[str, Any]]] = yaml.resolver.Resolver.yaml_implicit_resolvers
_IMMUTABLE = (str, int, float, bool, type(None))
_MISSING = object()


class _Composer(_BaseLoader):
    """Parses into nodes only; scalar types are resolved while building (see _Builder).

    Resolving every scalar through PyYAML's resolver is a Python call with
    regular expressions per scalar — most of the loading time of a large
    inventory; building resolves plain scalars once per distinct value.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return PLAIN_TAG
        return _DEFAULT_TAGS[kind]

    def construct_plain(self, node: ScalarNode) -> Any:
        """Plain scalars met by PyYAML's own constructors (inside ``!!set``…)."""
        value = node.value
        for tag, regexp in _IMPLICIT.get(value[0] if value else "", ()):
            if regexp.match(value):
                node.tag = tag
                return self.yaml_constructors[tag](self, node)
        return value


_Composer.add_constructor(PLAIN_TAG, _Composer.construct_plain)


class _Builder:
    """Turns composed nodes into YMap / YList / scalars, keeping every location."""

    def __init__(self, loader: _Composer, filename: str) -> None:
        self.loader = loader
        self.filename = filename
        self.memo: dict[int, Any] = {}  # anchors and aliases share nodes: and objects
        self.scalars: dict[str, Any] = {}

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        got = self.memo.get(id(node))
        if got is not None:
            return got
        if node.tag == MAP_TAG and isinstance(node, MappingNode):
            return self.mapping(node)
        if node.tag == SEQ_TAG and isinstance(node, SequenceNode):
            return self.sequence(node)
        return self.tagged(node)

    def scalar(self, node: ScalarNode) -> Any:
        value = node.value
        if node.tag != PLAIN_TAG:
            return value if node.tag == STR_TAG else self.tagged(node)
        got = self.scalars.get(value, _MISSING)
        if got is not _MISSING:
            return got
        result: Any = value
        for tag, regexp in _IMPLICIT.get(value[0] if value else "", ()):
            if regexp.match(value):
                node.tag = tag
                result = self.tagged(node)
                break
        if isinstance(result, _IMMUTABLE):
            self.scalars[value] = result
        return result

    def tagged(self, node: Node) -> Any:
        constructor = self.loader.yaml_constructors.get(node.tag)
        if constructor is None or node.tag in (MAP_TAG, SEQ_TAG):
            what = (
                "vault-encrypted values are not supported"
                if node.tag == "!vault"
                else (f"unsupported tag '{node.tag}'")
            )
            raise HlplayError(what, self.loc(node))
        result = constructor(self.loader, node)
        if isinstance(result, GeneratorType):  # sets, omaps: two-step constructors
            data = next(result)
            for _ in result:
                pass
            return data
        return result

    def key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise HlplayError("mapping keys must be plain scalars", self.loc(node))
        key = self.scalar(node)
        if isinstance(key, str):
            return key
        if key is None:
            return "null"
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, (int, float)):
            return str(key)
        raise HlplayError("mapping keys must be plain scalars", self.loc(node))

    def mapping(self, node: MappingNode) -> YMap:
        data: YMap = dict.__new__(YMap)
        data.loc = self.loc(node)
        data.key_locs = {}
        self.memo[id(node)] = data
        merged: list[YMap] = []
        key_locs = data.key_locs
        scalars = self.scalars
        filename = self.filename
        # the common cases (plain or quoted keys, string values) inline: this loop
        # runs for every key of every host of a large inventory
        for key_node, value_node in node.value:
            key_tag = key_node.tag
            if key_tag == PLAIN_TAG:
                key = key_node.value
                if key == "<<":
                    merged.extend(self.merge_sources(value_node))
                    continue
                if type(scalars.get(key)) is not str:
                    key = self.key(key_node)
            elif key_tag == "tag:yaml.org,2002:merge":
                merged.extend(self.merge_sources(value_node))
                continue
            else:
                key = self.key(key_node)
            if key in data:
                raise HlplayError(
                    f"duplicate key '{key}' (first at line {key_locs[key].line})",
                    self.loc(key_node),
                )
            value_tag = value_node.tag
            if value_tag == STR_TAG:
                data[key] = value_node.value
            elif value_tag == PLAIN_TAG:
                value = scalars.get(value_node.value, _MISSING)
                data[key] = self.scalar(value_node) if value is _MISSING else value
            else:
                data[key] = self.build(value_node)
            mark = key_node.start_mark
            key_locs[key] = Location(filename, mark.line + 1, mark.column + 1)
        # merge keys (<<): explicit keys win, then earlier merged mappings
        for source in merged:
            for key, value in source.items():
                if key not in data:
                    data[key] = value
                    key_locs[key] = source.loc_of(key)
        return data

    def merge_sources(self, node: Node) -> list[YMap]:
        if isinstance(node, MappingNode):
            got = self.build(node)
            if isinstance(got, YMap):
                return [got]
        if isinstance(node, SequenceNode):
            out: list[YMap] = []
            for item in node.value:
                got = self.build(item) if isinstance(item, MappingNode) else None
                if not isinstance(got, YMap):
                    break
                out.append(got)
            else:
                return out
        raise HlplayError("a merge key (<<) needs a mapping or a list of mappings", self.loc(node))

    def sequence(self, node: SequenceNode) -> YList:
        data: YList = list.__new__(YList)
        data.loc = self.loc(node)
        data.item_locs = []
        self.memo[id(node)] = data
        for child in node.value:
            data.append(self.build(child))
            data.item_locs.append(self.loc(child))
        return data


def load_yaml_text(text: str, filename: str) -> Any:
    """Parse YAML text; syntax errors become one-line :class:`HlplayError`."""
    loader = _Composer(text)
    # building allocates many small containers: the cyclic GC would rescan them
    # over and over for nothing (YAML trees only cycle through aliases)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Builder(loader, filename).build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(filename, mark.line + 1, mark.column + 1) if mark else Location(filename)
        problem = exc.problem or exc.context or "invalid YAML"
        raise HlplayError(f"invalid YAML: {problem}", loc) from None
    except yaml.YAMLError as exc:
        raise HlplayError(f"invalid YAML: {exc}", Location(filename)) from None
    finally:
        loader.dispose()
        if gc_was_enabled:
            gc.enable()


def load_yaml_file(path: Path | str) -> Any:
    """Read and parse a YAML file, with errors located in it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HlplayError("no such file", Location(str(p))) from None
    except IsADirectoryError:
        raise HlplayError("is a directory, expected a YAML file", Location(str(p))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HlplayError(f"cannot read: {exc}", Location(str(p))) from None
    return load_yaml_text(text, str(p))
