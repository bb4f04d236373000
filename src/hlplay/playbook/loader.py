"""Load and validate a playbook file before anything runs.

Every mistake found here is reported as ``file:line:col: message`` — unknown
keywords (with a did-you-mean), unknown modules, bad module arguments, bad
Jinja2 syntax in any templated string, unknown handlers — and nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from hlplay.errors import HlplayError, Location, PlaybookError, did_you_mean
from hlplay.inventory.names import type_name
from hlplay.modules.base import Module
from hlplay.modules.registry import canonical_name, find_module, get_module
from hlplay.playbook import validation
from hlplay.playbook.model import Block, Item, LoopControl, Play, Playbook, Task, iter_tasks
from hlplay.templating.templar import (
    NO_TEMPLATES,
    Layer,
    Templar,
    default_templar,
    has_template,
    template_keys,
)
from hlplay.yamlsrc import LIBYAML_MAX_DEPTH, MAX_YAML_DEPTH, YList, YMap, loc_of
from hlplay.yamlsrc import load_yaml_file as _load_yaml_file

# Blocks (and imported task files, which are blocks) nest at most this deep:
# the loader and the engine walk them recursively. The YAML of a playbook may
# nest deeper than other YAML, so that this limit, not the YAML one, is what
# deeply nested blocks meet, with the block named.
MAX_BLOCK_DEPTH = 100

PLAY_KEYWORDS = frozenset(
    (
        "name",
        "hosts",
        "vars",
        "vars_files",
        "serial",
        "max_fail_percentage",
        "any_errors_fatal",
        "strategy",
        "pre_tasks",
        "tasks",
        "post_tasks",
        "handlers",
        "tags",
        "check_mode",
        "diff",
        "gather_facts",
        "force_handlers",
    )
)
# Keywords a block passes down to its tasks (and that tasks may set themselves).
INHERITED = (
    "when",
    "tags",
    "vars",
    "ignore_errors",
    "ignore_unreachable",
    "delegate_to",
    "timeout",
    "check_mode",
    "diff",
    "no_log",
    "throttle",
    "any_errors_fatal",
    "run_once",
)
BLOCK_KEYWORDS = frozenset(("name", "block", "rescue", "always", *INHERITED))
TASK_KEYWORDS = frozenset(
    (
        "name",
        "args",
        "register",
        "loop",
        "with_items",
        "with_list",
        "with_dict",
        "loop_control",
        "until",
        "retries",
        "delay",
        "changed_when",
        "failed_when",
        "notify",
        *INHERITED,
    )
)
HANDLER_KEYWORDS = TASK_KEYWORDS | {"listen"}
IMPORT_KEYWORDS = frozenset(("name", "import_tasks", "when", "tags", "vars"))
LOOP_KEYS = ("loop", "with_items", "with_list", "with_dict")
LOOP_CONTROL_KEYS = frozenset(("loop_var", "index_var", "label", "pause", "extended"))
META_ACTIONS = frozenset(("flush_handlers", "noop", "end_play", "end_host", "end_batch"))

UNSUPPORTED: dict[str, str] = {
    "roles": "roles are not supported; put the tasks in the play or use import_tasks",
    "include_tasks": "include_tasks is not supported; use import_tasks (static)",
    "include_role": "roles are not supported; use import_tasks",
    "import_role": "roles are not supported; use import_tasks",
    "include_vars": "include_vars is not supported; use vars_files",
    "become": "become is set per host in the inventory (ssh.become), not in playbooks",
    "become_user": "become_user is set per host in the inventory, not in playbooks",
    "environment": "environment is not supported; pass variables in the command (env NAME=value …)",
    "connection": "the connection is the host's transport, set in the inventory",
    "vars_prompt": "vars_prompt is not supported; hlplay never reads the keyboard (use -e)",
    "local_action": "local_action is not supported; use delegate_to: localhost",
    "action": "action: is not supported; write the module name as the key",
    "with_sequence": 'with_sequence is not supported; use loop: "{{ range(…) | list }}"',
    "with_fileglob": "with_fileglob is not supported",
}


@dataclass(frozen=True)
class _Inherit:
    base_dir: Path
    depth: int = 0  # blocks and imports around the items
    imports: tuple[Path, ...] = ()  # the task files importing the items, resolved
    when: tuple[Any, ...] = ()
    tags: frozenset[str] = frozenset()
    vars_layers: tuple[Layer, ...] = ()
    ignore_errors: Any = None
    ignore_unreachable: bool | None = None
    delegate_to: str | None = None
    timeout: Any = None
    check_mode: bool | None = None
    diff: bool | None = None
    no_log: bool | None = None
    throttle: int | None = None
    any_errors_fatal: bool | None = None
    run_once: bool | None = None


def load_yaml_file(path: Path) -> Any:
    """YAML with locations; its errors become PlaybookError."""
    try:
        return _load_yaml_file(path, max_depth=LIBYAML_MAX_DEPTH)
    except PlaybookError:
        raise
    except HlplayError as exc:
        raise PlaybookError(exc.message, exc.location) from None


def _err(message: str, loc: Location) -> PlaybookError:
    return PlaybookError(message, loc)


def _as_bool(value: Any, key: str, loc: Location) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "on", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "off", "0"):
        return False
    raise _err(f"'{key}' must be true or false, got {value!r}", loc)


def _as_str_list(value: Any, key: str, loc: Location, *, split_commas: bool = False) -> list[str]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        return [p.strip() for p in text.split(",") if p.strip()] if split_commas else [text]
    if isinstance(value, list):
        out: list[str] = []
        for i, v in enumerate(value):
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                iloc = value.loc_of(i) if isinstance(value, YList) else loc
                raise _err(f"'{key}' items must be strings, got {v!r}", iloc)
            out.extend(_as_str_list(v, key, loc, split_commas=split_commas))
        return out
    raise _err(f"'{key}' must be a string or a list of strings, got {type_name(value)}", loc)


def parse_serial(value: Any, loc: Location) -> list[int | str]:
    """``serial``: an int, a percentage or a list of them (the last value repeats)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _err("'serial' list is empty", loc)
    out: list[int | str] = []
    for v in values:
        if isinstance(v, bool):
            raise _err(f"bad serial value {v!r}", loc)
        if isinstance(v, int):
            if v < 0:
                raise _err(f"serial must not be negative, got {v}", loc)
            out.append(v)
            continue
        text = str(v).strip()
        if text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                raise _err(f"bad serial percentage {v!r}", loc) from None
            if not 0 < pct <= 100:
                raise _err(f"serial percentage must be in (0, 100], got {v!r}", loc)
            out.append(text)
            continue
        if text.isdigit():
            out.append(int(text))
            continue
        raise _err(f"serial must be a number, a percentage ('30%') or a list, got {v!r}", loc)
    return out


def _conditions(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(value)
    return (value,)


class _PlaybookLoader:
    def __init__(self, templar: Templar, extra_vars: Mapping[str, Any]) -> None:
        self.templar = templar
        self.extra_vars = dict(extra_vars)
        self.next_id = 0
        self.files: list[Path] = []
        self.play_index = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- templates ------------------------------------------------------------

    def _check_template(self, value: Any, loc: Location, depth: int = 0) -> None:
        """Compile every template string in ``value`` (deeply) or fail at ``loc``.

        Values nest no deeper than other YAML may (``MAX_YAML_DEPTH``): the
        playbook's own YAML may be deeper only for its blocks.
        """
        if depth > MAX_YAML_DEPTH:
            raise _err(f"nested deeper than {MAX_YAML_DEPTH} levels", loc)
        if isinstance(value, str):
            if has_template(value):
                try:
                    self.templar.check(value)
                except TemplateSyntaxError as exc:
                    raise _err(f"template syntax error in {value!r}: {exc.message}", loc) from None
        elif isinstance(value, Mapping):
            for k, v in value.items():
                sub = value.loc_of(k) if isinstance(value, YMap) else loc
                self._check_template(k, sub)
                self._check_template(v, sub, depth + 1)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                iloc = value.loc_of(i) if isinstance(value, YList) else loc
                self._check_template(v, iloc, depth + 1)

    def _check_expressions(self, values: tuple[Any, ...], key: str, loc: Location) -> None:
        for v in values:
            if isinstance(v, bool) or v is None:
                continue
            if not isinstance(v, str):
                raise _err(f"'{key}' must be a condition (a string or true/false), got {v!r}", loc)
            try:
                self.templar.check_expression(v)
            except TemplateSyntaxError as exc:
                raise _err(f"syntax error in {key} condition {v!r}: {exc.message}", loc) from None

    def _render_static(self, value: str, loc: Location) -> str:
        """Render a path that may use extra vars (import_playbook, vars_files)."""
        if not has_template(value):
            return value
        self._check_template(value, loc)
        from hlplay.templating.templar import TemplateFailure, Vars

        scope = Vars([(self.extra_vars, NO_TEMPLATES), self.templar.globals_layer], self.templar)
        try:
            return str(self.templar.render(value, scope))
        except TemplateFailure as exc:
            raise _err(exc.message, loc) from None

    # --- files ------------------------------------------------------------------

    def load(self, path: Path) -> Playbook:
        try:
            plays = self._load_file(path, [])
        except RecursionError:
            # values nested almost as deep as YAML allows (blocks are bounded)
            where = self.files[-1] if self.files else path
            raise _err("nested too deeply to load", Location(str(where))) from None
        if not plays:
            # as ansible-playbook: an empty playbook is a mistake, not a successful run
            raise _err("the playbook has no plays", Location(str(path)))
        return Playbook(path=path, plays=plays, files=list(self.files))

    def _load_file(self, path: Path, stack: list[Path]) -> list[Play]:
        resolved = path.resolve()
        if resolved in stack:
            chain = " -> ".join(p.name for p in [*stack, resolved])
            raise _err(f"import_playbook loop: {chain}", Location(str(path)))
        self.files.append(path)
        data = load_yaml_file(path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise _err(
                "a playbook must be a list of plays", loc_of(data, Location(str(path), 1, 1))
            )
        plays: list[Play] = []
        for i, entry in enumerate(data):
            loc = data.loc_of(i) if isinstance(data, YList) else Location(str(path))
            if not isinstance(entry, YMap):
                raise _err("a play must be a mapping (hosts:, tasks: …)", loc)
            if "import_playbook" in entry:
                extra = set(entry) - {"import_playbook", "name"}
                if extra:
                    key = sorted(extra)[0]
                    raise _err(f"'{key}' is not allowed next to import_playbook", entry.loc_of(key))
                target = entry["import_playbook"]
                if not isinstance(target, str) or not target:
                    raise _err("import_playbook needs a file name", entry.loc_of("import_playbook"))
                rel = self._render_static(target, entry.loc_of("import_playbook"))
                sub = (path.parent / rel) if not Path(rel).is_absolute() else Path(rel)
                if not sub.exists():
                    raise _err(
                        f"imported playbook not found: {rel}", entry.loc_of("import_playbook")
                    )
                plays.extend(self._load_file(sub, [*stack, resolved]))
                continue
            plays.append(self._play(entry, path))
        return plays

    # --- plays ------------------------------------------------------------------

    def _play(self, data: YMap, path: Path) -> Play:
        for key in data:
            if key not in PLAY_KEYWORDS:
                if key in UNSUPPORTED:
                    raise _err(UNSUPPORTED[key], data.loc_of(key))
                if find_module(key) is not None or key in ("block", "when", "register", "loop"):
                    raise _err(
                        f"'{key}' belongs in a task: put it under 'tasks:'", data.loc_of(key)
                    )
                raise _err(
                    f"unknown play keyword '{key}'{did_you_mean(key, PLAY_KEYWORDS)}",
                    data.loc_of(key),
                )
        if "hosts" not in data:
            raise _err("a play needs 'hosts:' (a host pattern, e.g. all or tier=test)", data.loc)
        hosts_raw = data["hosts"]
        if isinstance(hosts_raw, list):
            hosts = ",".join(_as_str_list(hosts_raw, "hosts", data.loc_of("hosts")))
        elif isinstance(hosts_raw, str) and hosts_raw.strip():
            hosts = hosts_raw.strip()
        else:
            raise _err("'hosts' must be a host pattern string", data.loc_of("hosts"))
        self._check_template(hosts, data.loc_of("hosts"))
        self.play_index += 1
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            name = str(name)
        play = Play(
            name=name if name else hosts,
            hosts=hosts,
            loc=data.loc,
            base_dir=path.parent,
            index=self.play_index,
        )
        if name:
            self._check_template(name, data.loc_of("name"))
        if "vars" in data:
            play.vars = self._vars(data["vars"], data.loc_of("vars"))
        if "vars_files" in data:
            files = data["vars_files"]
            loc = data.loc_of("vars_files")
            for i, f in enumerate(_as_str_list(files, "vars_files", loc)):
                floc = files.loc_of(i) if isinstance(files, YList) else loc
                self._check_template(f, floc)
                play.vars_files.append((f, floc))
        if "serial" in data:
            play.serial = self._serial(data["serial"], data.loc_of("serial"))
        if "max_fail_percentage" in data:
            mfp = data["max_fail_percentage"]
            loc = data.loc_of("max_fail_percentage")
            if isinstance(mfp, str) and mfp.strip().endswith("%"):
                mfp = mfp.strip()[:-1]
            try:
                value = float(mfp)
            except (TypeError, ValueError):
                raise _err("'max_fail_percentage' must be a number from 0 to 100", loc) from None
            if not 0 <= value <= 100 or isinstance(mfp, bool):
                raise _err("'max_fail_percentage' must be a number from 0 to 100", loc)
            play.max_fail_percentage = value
        for key in ("any_errors_fatal", "gather_facts", "force_handlers"):
            if key in data:
                setattr(play, key, _as_bool(data[key], key, data.loc_of(key)))
        for key in ("check_mode", "diff"):
            if key in data:
                setattr(play, key, _as_bool(data[key], key, data.loc_of(key)))
        if "strategy" in data:
            strategy = data["strategy"]
            if strategy not in ("linear", "free"):
                hint = did_you_mean(str(strategy), ("linear", "free"))
                raise _err(
                    f"unknown strategy {strategy!r}{hint} (linear or free)", data.loc_of("strategy")
                )
            play.strategy = strategy
        if "tags" in data:
            play.tags = frozenset(
                _as_str_list(data["tags"], "tags", data.loc_of("tags"), split_commas=True)
            )
        inherit = _Inherit(base_dir=path.parent, tags=play.tags)
        if "handlers" in data:
            play.handlers = [
                t
                for t in iter_tasks(
                    self._items(
                        data["handlers"], "handlers", data.loc_of("handlers"), inherit, True
                    )
                )
            ]
            for h in play.handlers:
                if not h.name and not h.listen:
                    raise _err("a handler needs a 'name' (or 'listen')", h.loc)
        for section in ("pre_tasks", "tasks", "post_tasks"):
            if section in data:
                items = self._items(data[section], section, data.loc_of(section), inherit, False)
                setattr(play, section, items)
        self._check_notify(play)
        return play

    def _vars(self, value: Any, loc: Location) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _err("'vars' must be a mapping of names to values", loc)
        for key in value:
            kloc = value.loc_of(key) if isinstance(value, YMap) else loc
            if not isinstance(key, str) or not key.isidentifier():
                raise _err(f"invalid variable name {key!r}", kloc)
        self._check_template(value, loc)
        return dict(value)

    def _serial(self, value: Any, loc: Location) -> list[int | str]:
        if isinstance(value, str) and has_template(value):
            self._check_template(value, loc)
            return [value]  # rendered with -e and play vars when the run starts
        return parse_serial(value, loc)

    def _check_notify(self, play: Play) -> None:
        names = {h.name for h in play.handlers if h.name} | {
            t for h in play.handlers for t in h.listen
        }
        every = [*iter_tasks(play.pre_tasks), *iter_tasks(play.tasks)]
        every += [*iter_tasks(play.post_tasks), *play.handlers]
        for task in every:
            for name in task.notify:
                if has_template(name) or name in names:
                    continue
                raise _err(
                    f"notify: no handler named '{name}' in this play{did_you_mean(name, names)}",
                    task.loc,
                )

    # --- tasks ------------------------------------------------------------------

    def _items(
        self, value: Any, section: str, loc: Location, inherit: _Inherit, handler: bool
    ) -> list[Item]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _err(f"'{section}' must be a list of tasks", loc)
        out: list[Item] = []
        for i, entry in enumerate(value):
            eloc = value.loc_of(i) if isinstance(value, YList) else loc
            if not isinstance(entry, YMap):
                raise _err(f"each entry of '{section}' must be a task (a mapping)", eloc)
            if "import_tasks" in entry:
                out.append(self._import_tasks(entry, inherit, handler))
            elif "block" in entry:
                out.append(self._block(entry, inherit, handler))
            else:
                out.append(self._task(entry, inherit, handler))
        return out

    def _inherit_from(self, data: YMap, parent: _Inherit) -> _Inherit:
        """Apply a block's (or a task's) own inherited keywords over its parent's."""
        changes: dict[str, Any] = {}
        if "when" in data:
            own = _conditions(data["when"])
            self._check_expressions(own, "when", data.loc_of("when"))
            changes["when"] = parent.when + own
        if "tags" in data:
            tags = _as_str_list(data["tags"], "tags", data.loc_of("tags"), split_commas=True)
            changes["tags"] = parent.tags | frozenset(tags)
        if "vars" in data:
            own_vars = self._vars(data["vars"], data.loc_of("vars"))
            changes["vars_layers"] = ((own_vars, template_keys(own_vars)), *parent.vars_layers)
        if "ignore_errors" in data:
            v = data["ignore_errors"]
            if isinstance(v, str) and has_template(v):
                self._check_template(v, data.loc_of("ignore_errors"))
                changes["ignore_errors"] = v
            else:
                changes["ignore_errors"] = _as_bool(
                    v, "ignore_errors", data.loc_of("ignore_errors")
                )
        for key in (
            "ignore_unreachable",
            "check_mode",
            "diff",
            "no_log",
            "any_errors_fatal",
            "run_once",
        ):
            if key in data:
                changes[key] = _as_bool(data[key], key, data.loc_of(key))
        if "delegate_to" in data:
            d = data["delegate_to"]
            if not isinstance(d, str) or not d.strip():
                raise _err("'delegate_to' must be a host name", data.loc_of("delegate_to"))
            self._check_template(d, data.loc_of("delegate_to"))
            changes["delegate_to"] = d.strip()
        if "timeout" in data:
            t = data["timeout"]
            tloc = data.loc_of("timeout")
            if isinstance(t, str) and has_template(t):
                self._check_template(t, tloc)
            elif isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
                raise _err(f"'timeout' must be a positive number of seconds, got {t!r}", tloc)
            changes["timeout"] = t
        if "throttle" in data:
            th = data["throttle"]
            if isinstance(th, bool) or not isinstance(th, int) or th < 0:
                raise _err(
                    f"'throttle' must be a whole number, got {th!r}", data.loc_of("throttle")
                )
            changes["throttle"] = th
        return replace(parent, **changes) if changes else parent

    def _deeper(self, parent: _Inherit, loc: Location) -> _Inherit:
        if parent.depth >= MAX_BLOCK_DEPTH:
            raise _err(f"blocks nested deeper than {MAX_BLOCK_DEPTH} (imports count)", loc)
        return replace(parent, depth=parent.depth + 1)

    def _block(self, data: YMap, parent: _Inherit, handler: bool) -> Block:
        parent = self._deeper(parent, data.loc)
        for key in data:
            if key not in BLOCK_KEYWORDS:
                if key in LOOP_KEYS:
                    raise _err(f"'{key}' cannot be used on a block", data.loc_of(key))
                if key in UNSUPPORTED:
                    raise _err(UNSUPPORTED[key], data.loc_of(key))
                if find_module(key) is not None:
                    raise _err(
                        f"a block cannot have an action ('{key}'): put it in a task under 'block:'",
                        data.loc_of(key),
                    )
                raise _err(
                    f"unknown block keyword '{key}'{did_you_mean(key, BLOCK_KEYWORDS)}",
                    data.loc_of(key),
                )
        inherit = self._inherit_from(data, parent)
        name = data.get("name")
        if name is not None:
            self._check_template(str(name), data.loc_of("name"))
        return Block(
            id=self._id(),
            loc=data.loc,
            name=str(name) if name is not None else None,
            block=self._items(data["block"], "block", data.loc_of("block"), inherit, handler),
            rescue=self._items(
                data.get("rescue"), "rescue", data.loc_of("rescue"), inherit, handler
            ),
            always=self._items(
                data.get("always"), "always", data.loc_of("always"), inherit, handler
            ),
        )

    def _import_tasks(self, data: YMap, parent: _Inherit, handler: bool) -> Block:
        for key in data:
            if key not in IMPORT_KEYWORDS:
                raise _err(
                    f"'{key}' is not allowed with import_tasks{did_you_mean(key, IMPORT_KEYWORDS)}",
                    data.loc_of(key),
                )
        target = data["import_tasks"]
        tloc = data.loc_of("import_tasks")
        if not isinstance(target, str) or not target:
            raise _err("import_tasks needs a file name", tloc)
        rel = self._render_static(target, tloc)
        path = Path(rel) if Path(rel).is_absolute() else parent.base_dir / rel
        if not path.exists():
            raise _err(f"task file not found: {rel}", tloc)
        resolved = path.resolve()
        if resolved in parent.imports:
            chain = [*parent.imports[parent.imports.index(resolved) :], resolved]
            via = " -> ".join(p.name for p in chain)
            raise _err(f"import_tasks: {rel} imports itself (via {via})", tloc)
        parent = self._deeper(parent, data.loc)
        self.files.append(path)
        content = load_yaml_file(path)
        inherit = replace(
            self._inherit_from(data, parent),
            base_dir=path.parent,
            imports=(*parent.imports, resolved),
        )
        items = self._items(
            content, "tasks", loc_of(content, Location(str(path))), inherit, handler
        )
        return Block(id=self._id(), loc=data.loc, block=items, name=data.get("name"))

    def _find_action(self, data: YMap, allowed: frozenset[str]) -> tuple[str, type[Module] | None]:
        actions: list[tuple[str, type[Module] | None]] = []
        unknown: list[str] = []
        for key in data:
            if key in allowed:
                continue
            if key in UNSUPPORTED:
                raise _err(UNSUPPORTED[key], data.loc_of(key))
            if key.startswith("with_"):
                raise _err(
                    f"'{key}' is not supported; use loop:{did_you_mean(key, LOOP_KEYS)}",
                    data.loc_of(key),
                )
            if canonical_name(key) == "meta":
                actions.append((key, None))
                continue
            module = find_module(key)
            if module is not None:
                actions.append((key, module))
            else:
                unknown.append(key)
        if len(actions) > 1:
            names = " and ".join(f"'{a}'" for a, _ in actions)
            raise _err(
                f"a task can have only one action, found {names}", data.loc_of(actions[1][0])
            )
        for key in unknown:
            keyword_hint = did_you_mean(key, allowed)
            if actions or keyword_hint:
                raise _err(f"unknown task keyword '{key}'{keyword_hint}", data.loc_of(key))
            try:
                get_module(key)
            except PlaybookError as exc:
                raise _err(exc.message, data.loc_of(key)) from None
        if not actions:
            raise _err("task has no action: name a module (command:, debug: …)", data.loc)
        return actions[0]

    def _task(self, data: YMap, parent: _Inherit, handler: bool) -> Task:
        allowed = HANDLER_KEYWORDS if handler else TASK_KEYWORDS
        key, module = self._find_action(data, allowed)
        akey = data.loc_of(key)
        inherit = self._inherit_from(data, parent)
        name = data.get("name")
        if name is not None:
            name = str(name)
            self._check_template(name, data.loc_of("name"))
        task = Task(
            id=self._id(),
            action="meta" if module is None else module.name,
            module=module,
            args={},
            loc=data.loc,
            name=name,
            when=inherit.when,
            tags=inherit.tags,
            vars_layers=inherit.vars_layers,
            ignore_errors=inherit.ignore_errors if inherit.ignore_errors is not None else False,
            ignore_unreachable=bool(inherit.ignore_unreachable),
            delegate_to=inherit.delegate_to,
            timeout=inherit.timeout,
            check_mode=inherit.check_mode,
            diff=inherit.diff,
            no_log=bool(inherit.no_log),
            throttle=inherit.throttle or 0,
            any_errors_fatal=inherit.any_errors_fatal,
            run_once=bool(inherit.run_once),
            is_handler=handler,
        )
        if module is None:
            self._meta(task, data[key], akey)
        else:
            task.args = self._args(module, data, key)
        if "register" in data:
            reg = data["register"]
            if not isinstance(reg, str) or not reg.isidentifier():
                raise _err(
                    f"'register' must be a variable name, got {reg!r}", data.loc_of("register")
                )
            task.register = reg
        self._loop(task, data)
        if "until" in data:
            task.until = _conditions(data["until"])
            self._check_expressions(task.until, "until", data.loc_of("until"))
            task.retries = 3
        for key_ in ("retries", "delay"):
            if key_ in data:
                v = data[key_]
                vloc = data.loc_of(key_)
                if isinstance(v, str) and has_template(v):
                    self._check_template(v, vloc)
                elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise _err(f"'{key_}' must be a non-negative number, got {v!r}", vloc)
                setattr(task, key_, v)
        for key_ in ("changed_when", "failed_when"):
            if key_ in data:
                conds = _conditions(data[key_])
                self._check_expressions(conds, key_, data.loc_of(key_))
                setattr(task, key_, conds)
        if "notify" in data:
            notify = _as_str_list(data["notify"], "notify", data.loc_of("notify"))
            task.notify = tuple(notify)
        if handler and "listen" in data:
            task.listen = tuple(_as_str_list(data["listen"], "listen", data.loc_of("listen")))
        return task

    def _meta(self, task: Task, value: Any, loc: Location) -> None:
        if value not in META_ACTIONS:
            hint = did_you_mean(str(value), META_ACTIONS)
            raise _err(
                f"unknown meta action {value!r}{hint} ({', '.join(sorted(META_ACTIONS))})", loc
            )
        task.args = {"action": value}

    def _args(self, module: type[Module], data: YMap, key: str) -> dict[str, Any]:
        akey = data.loc_of(key)
        raw = data[key]
        try:
            args = validation.normalize(module, raw)
            if "args" in data:
                extra = data["args"]
                if not isinstance(extra, Mapping):
                    raise _err("'args' must be a mapping", data.loc_of("args"))
                merged = validation.normalize(module, extra)
                merged.update(args)
                args = merged
            validation.validate_static(module, args)
        except validation.ArgsError as exc:
            loc = akey
            if exc.arg and isinstance(raw, YMap) and exc.arg in raw:
                loc = raw.loc_of(exc.arg)
            raise _err(f"{exc}", loc) from None
        expr_args = getattr(module, "expression_args", ())
        for name, value in args.items():
            vloc = raw.loc_of(name) if isinstance(raw, YMap) and name in raw else akey
            if name in expr_args:
                conds = _conditions(value)
                self._check_expressions(conds, f"{module.name} {name}", vloc)
            else:
                self._check_template(value, vloc)
        return args

    def _loop(self, task: Task, data: YMap) -> None:
        present = [k for k in LOOP_KEYS if k in data]
        if len(present) > 1:
            raise _err(f"use only one of {', '.join(present)} on a task", data.loc_of(present[1]))
        if present:
            key = present[0]
            value = data[key]
            vloc = data.loc_of(key)
            if isinstance(value, str):
                if not has_template(value):
                    raise _err(
                        f"'{key}' needs a list or a template giving one, got the string {value!r}",
                        vloc,
                    )
            elif key == "with_dict":
                if not isinstance(value, Mapping):
                    raise _err("'with_dict' needs a mapping", vloc)
            elif not isinstance(value, list):
                raise _err(f"'{key}' needs a list, got {type_name(value)}", vloc)
            self._check_template(value, vloc)
            task.loop = value
            task.loop_kind = {"with_items": "items", "with_dict": "dict"}.get(key, "loop")
        if "loop_control" in data:
            lc = data["loop_control"]
            lloc = data.loc_of("loop_control")
            if not present:
                raise _err("'loop_control' without a loop", lloc)
            if not isinstance(lc, Mapping):
                raise _err("'loop_control' must be a mapping", lloc)
            for k in lc:
                if k not in LOOP_CONTROL_KEYS:
                    hint = did_you_mean(str(k), LOOP_CONTROL_KEYS)
                    kloc = lc.loc_of(k) if isinstance(lc, YMap) else lloc
                    raise _err(f"unknown loop_control key '{k}'{hint}", kloc)
            for k in ("loop_var", "index_var"):
                if k in lc and (not isinstance(lc[k], str) or not lc[k].isidentifier()):
                    raise _err(f"loop_control.{k} must be a variable name", lloc)
            label = lc.get("label")
            if label is not None:
                self._check_template(str(label), lloc)
            pause = lc.get("pause", 0)
            if isinstance(pause, bool) or not isinstance(pause, (int, float)) or pause < 0:
                raise _err("loop_control.pause must be a number of seconds", lloc)
            task.loop_control = LoopControl(
                loop_var=lc.get("loop_var", "item"),
                index_var=lc.get("index_var"),
                label=None if label is None else str(label),
                pause=float(pause),
                extended=_as_bool(lc.get("extended", False), "extended", lloc),
            )


def load_playbook(
    path: str | Path,
    *,
    extra_vars: Mapping[str, Any] | None = None,
    templar: Templar | None = None,
) -> Playbook:
    """Load, validate and compile a playbook; raises PlaybookError (file:line:col)."""
    p = Path(path)
    loader = _PlaybookLoader(templar or default_templar(), extra_vars or {})
    return loader.load(p)
