"""YAML loading that keeps where every mapping, key and list item came from.

Inventory and playbook loaders need ``file:line:column`` for every error, so
mappings load as :class:`YMap` (a dict that remembers its own location and the
location of each key) and sequences as :class:`YList` (a list that remembers
each item's location). Duplicate keys are an error, not a silent overwrite.

Every YAML file hlplay reads is user input, so loading is bounded: only
regular files are opened (a FIFO or ``/dev/zero`` would block or never end),
a file may hold at most :data:`MAX_YAML_BYTES` (``HLPLAY_MAX_YAML_BYTES``),
and aliases may stand for at most :data:`MAX_ALIAS_NODES` nodes in all
(``HLPLAY_MAX_YAML_ALIAS_NODES``): a "billion laughs" document is a few lines
that every later walk over the data would expand to 10**9 nodes.
"""

from __future__ import annotations

import gc
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, GeneratorType
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

MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_ALIAS_NODES = 1_000_000
# Deep enough for any real inventory or vars file, shallow enough that every
# recursive walk over the data (templating, merging, JSON) stays far from
# Python's recursion limit. The playbook loader asks for more and bounds
# block nesting itself, so that error can name the block.
MAX_YAML_DEPTH = 200
LIBYAML_MAX_DEPTH = 1000
SIZE_ENVVAR = "HLPLAY_MAX_YAML_BYTES"
ALIAS_ENVVAR = "HLPLAY_MAX_YAML_ALIAS_NODES"
# libyaml refuses documents nested deeper than 1000 levels; building one takes
# two Python frames a level, more than the default recursion limit leaves.
_BUILD_FRAMES = 2 * LIBYAML_MAX_DEPTH + 500
# An alias of a long string multiplies text, not nodes: past this length each
# use of the string counts one node per this many characters.
LONG_SCALAR = 64


def _limit(envvar: str, default: int) -> int:
    raw = os.environ.get(envvar, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HlplayError(f"{envvar} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise HlplayError(f"{envvar} must be positive, got {raw!r}")
    return value


def max_yaml_bytes() -> int:
    return _limit(SIZE_ENVVAR, MAX_YAML_BYTES)


def max_alias_nodes() -> int:
    return _limit(ALIAS_ENVVAR, MAX_ALIAS_NODES)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


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

    def __init__(self, loader: _Composer, filename: str, max_depth: int) -> None:
        self.loader = loader
        self.max_depth = max_depth
        self.depth = 0
        self.filename = filename
        self.memo: dict[int, Any] = {}  # anchors and aliases share nodes: and objects
        self.scalars: dict[str, Any] = {}
        # measured only when an alias is met, so documents without any pay nothing
        self.alias_budget = max_alias_nodes()
        self.expanded: dict[int, tuple[int, int]] = {}
        self.measuring: set[int] = set()
        self.long_scalars: set[int] = set()

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            if len(node.value) > LONG_SCALAR:
                self.long_scalar(node)
            return self.scalar(node)
        got = self.memo.get(id(node))
        if got is not None:
            self.alias(node)
            return got
        if node.tag == MAP_TAG and isinstance(node, MappingNode):
            return self.mapping(node)
        if node.tag == SEQ_TAG and isinstance(node, SequenceNode):
            return self.sequence(node)
        return self.tagged(node)

    def long_scalar(self, node: ScalarNode) -> None:
        """A long string met again is an alias of it: count it against the budget."""
        key = id(node)
        if key not in self.long_scalars:
            self.long_scalars.add(key)
            return
        self.alias_budget -= len(node.value) // LONG_SCALAR + 1
        if self.alias_budget < 0:
            raise HlplayError(
                f"aliases expand to more than {max_alias_nodes()} nodes"
                f" (of {LONG_SCALAR} characters of text); the limit is {ALIAS_ENVVAR}",
                self.loc(node),
            )

    def alias(self, node: Node) -> None:
        """Count what an alias stands for; refuse cycles, and expansion past the
        budget or the depth (an alias nests its node where it is used)."""
        size, depth = self.expanded_size(node)
        self.alias_budget -= size
        if self.alias_budget < 0:
            raise HlplayError(
                f"aliases expand to more than {max_alias_nodes()} nodes"
                f" (a 'billion laughs' document?); the limit is {ALIAS_ENVVAR}",
                self.loc(node),
            )
        if self.depth + depth > self.max_depth:
            raise HlplayError(
                f"nested deeper than {self.max_depth} levels (through aliases)", self.loc(node)
            )

    def expanded_size(self, node: Node) -> tuple[int, int]:
        """How many nodes ``node`` is, and how deep, with every alias in it written out."""
        key = id(node)
        got = self.expanded.get(key)
        if got is not None:
            return got
        if key in self.measuring:
            raise HlplayError("an alias refers to a node that contains it", self.loc(node))
        self.measuring.add(key)
        total, depth = 1, 0
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, SequenceNode):
            children = node.value
        for child in children:
            size, sub = self.expanded_size(child)
            total += size
            depth = max(depth, sub)
        if not isinstance(node, ScalarNode):
            depth += 1
        self.measuring.discard(key)
        self.expanded[key] = (total, depth)
        return total, depth

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

    def deeper(self, node: Node) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise HlplayError(f"nested deeper than {self.max_depth} levels", self.loc(node))

    def mapping(self, node: MappingNode) -> YMap:
        self.deeper(node)
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
                text = value_node.value
                if len(text) > LONG_SCALAR:
                    self.long_scalar(value_node)
                data[key] = text
            elif value_tag == PLAIN_TAG:
                text = value_node.value
                if len(text) > LONG_SCALAR:
                    self.long_scalar(value_node)
                value = scalars.get(text, _MISSING)
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
        self.depth -= 1
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
        self.deeper(node)
        data: YList = list.__new__(YList)
        data.loc = self.loc(node)
        data.item_locs = []
        self.memo[id(node)] = data
        for child in node.value:
            data.append(self.build(child))
            data.item_locs.append(self.loc(child))
        self.depth -= 1
        return data


@contextmanager
def _recursion_room(frames: int) -> Iterator[None]:
    """Room for ``frames`` more Python frames than are in use now.

    Building recurses once per nesting level, in Python frames only (no C
    stack is used for them), so the room is safe to give.
    """
    old = sys.getrecursionlimit()
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    wanted = depth + frames
    if wanted > old:
        sys.setrecursionlimit(wanted)
    try:
        yield
    finally:
        if wanted > old and sys.getrecursionlimit() == wanted:
            sys.setrecursionlimit(old)


def load_yaml_text(text: str, filename: str, *, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """Parse YAML text; syntax errors become one-line :class:`HlplayError`.

    Collections may nest ``max_depth`` levels (libyaml stops at 1000).
    """
    limit = max_yaml_bytes()
    if len(text) > limit:
        raise HlplayError(
            f"too large ({_size(len(text))}; the limit is {_size(limit)}, {SIZE_ENVVAR})",
            Location(filename),
        )
    loader = _Composer(text)
    # building allocates many small containers: the cyclic GC would rescan them
    # over and over for nothing (YAML trees only cycle through aliases)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _recursion_room(_BUILD_FRAMES):
            node = loader.get_single_node()
            if node is None:
                return None
            return _Builder(loader, filename, max_depth).build(node)
    except RecursionError:
        # the pure-Python parser (PyYAML without libyaml) has no depth limit of its own
        raise HlplayError("invalid YAML: nested too deeply", Location(filename)) from None
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


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, expected a YAML file"
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file: not read"


def read_user_file(path: Path | str) -> str:
    """The text of a user's file: a regular file (checked before it is opened,
    and again once open) of at most :func:`max_yaml_bytes`, in UTF-8."""
    p = Path(path)
    where = Location(str(p))
    try:
        before = os.stat(p)
    except FileNotFoundError:
        raise HlplayError("no such file", where) from None
    except OSError as exc:
        raise HlplayError(f"cannot read: {exc.strerror or exc}", where) from None
    problem = _not_regular(before.st_mode)
    if problem:
        raise HlplayError(problem, where)
    limit = max_yaml_bytes()
    too_large = f"too large (%s; the limit is {_size(limit)}, {SIZE_ENVVAR})"
    if before.st_size > limit:
        raise HlplayError(too_large % _size(before.st_size), where)
    try:
        # O_NONBLOCK: a FIFO swapped in after the check must not block the open
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            problem = _not_regular(os.fstat(fh.fileno()).st_mode)
            if problem:
                raise HlplayError(problem, where)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise HlplayError(f"cannot read: {exc.strerror or exc}", where) from None
    if len(data) > limit:
        raise HlplayError(too_large % f"more than {_size(limit)}", where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HlplayError(f"cannot read: {exc}", where) from None
    if "\r" in text:  # as a text-mode read would: universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def load_yaml_file(path: Path | str, *, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """Read and parse a YAML file, with errors located in it."""
    return load_yaml_text(read_user_file(path), str(Path(path)), max_depth=max_depth)
