"""YAML loading that keeps where every mapping, key and list item came from.

Inventory and playbook loaders need ``file:line:column`` for every error, so
mappings load as :class:`YMap` (a dict that remembers its own location and the
location of each key) and sequences as :class:`YList` (a list that remembers
each item's location). Duplicate keys are an error, not a silent overwrite.
"""

from __future__ import annotations

from pathlib import Path
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


class _Loader(_BaseLoader):
    filename = "<string>"

    def construct_yaml_map(self, node: MappingNode) -> Any:
        data = YMap()
        data.loc = _mark_loc(self.filename, node)
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise HlplayError(
                    "mapping keys must be plain scalars", _mark_loc(self.filename, key_node)
                )
            skey = key if isinstance(key, str) else ("null" if key is None else str(key))
            if isinstance(key, bool):
                skey = str(key).lower()
            if skey in data:
                raise HlplayError(
                    f"duplicate key '{skey}' (first at line {data.key_locs[skey].line})",
                    _mark_loc(self.filename, key_node),
                )
            data[skey] = self.construct_object(value_node, deep=True)
            data.key_locs[skey] = _mark_loc(self.filename, key_node)

    def construct_yaml_seq(self, node: SequenceNode) -> Any:
        data = YList()
        data.loc = _mark_loc(self.filename, node)
        yield data
        for child in node.value:
            data.append(self.construct_object(child, deep=True))
            data.item_locs.append(_mark_loc(self.filename, child))


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)


def _scalar_text(node: Node) -> str:
    return node.value if isinstance(node, ScalarNode) else ""


def load_yaml_text(text: str, filename: str) -> Any:
    """Parse YAML text; syntax errors become one-line :class:`HlplayError`."""

    class Loader(_Loader):
        pass

    Loader.filename = filename
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(filename, mark.line + 1, mark.column + 1) if mark else Location(filename)
        problem = exc.problem or exc.context or "invalid YAML"
        raise HlplayError(f"invalid YAML: {problem}", loc) from None
    except yaml.YAMLError as exc:
        raise HlplayError(f"invalid YAML: {exc}", Location(filename)) from None


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
