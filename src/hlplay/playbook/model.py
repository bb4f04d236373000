"""A loaded playbook: plays, tasks and blocks, validated and ready to run.

Keywords that Ansible lets blocks pass down (``when``, ``tags``, ``vars``,
``ignore_errors`` …) are already merged into each task by the loader, so the
engine reads one task's settings from the task alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hlplay.errors import Location

if TYPE_CHECKING:
    from hlplay.modules.base import Module
    from hlplay.templating.templar import Layer

Strategy = Literal["linear", "free"]


@dataclass(frozen=True)
class LoopControl:
    loop_var: str = "item"
    index_var: str | None = None
    label: str | None = None  # a template, rendered per item for display
    pause: float = 0.0
    extended: bool = False


@dataclass(eq=False)
class Task:
    """One action, with everything inherited from enclosing blocks and the play."""

    id: int
    action: str  # the module's name ("meta" for meta tasks)
    module: type[Module] | None  # None for meta
    args: Any  # mapping of argument -> raw value (templates not yet rendered)
    loc: Location
    name: str | None = None
    when: tuple[Any, ...] = ()
    register: str | None = None
    loop: Any = None  # template string or list; None = no loop
    loop_kind: str = "loop"  # "loop", "items" (with_items: flattened once) or "dict"
    loop_control: LoopControl = field(default_factory=LoopControl)
    until: tuple[Any, ...] = ()
    retries: Any = None
    delay: Any = 5
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    ignore_errors: Any = False
    ignore_unreachable: bool = False
    tags: frozenset[str] = frozenset()
    notify: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    run_once: bool = False
    delegate_to: str | None = None
    timeout: Any = None
    check_mode: bool | None = None
    diff: bool | None = None
    no_log: bool = False
    # variable layers from the innermost (the task's own vars) outwards
    vars_layers: tuple[Layer, ...] = ()
    throttle: int = 0
    any_errors_fatal: bool | None = None
    is_handler: bool = False

    @property
    def display_name(self) -> str:
        return self.name or self.action


@dataclass(eq=False)
class Block:
    """``block`` / ``rescue`` / ``always``: tasks inside carry the block's keywords."""

    id: int
    loc: Location
    block: list[Item]
    rescue: list[Item] = field(default_factory=list)
    always: list[Item] = field(default_factory=list)
    name: str | None = None


Item = Task | Block


@dataclass(eq=False)
class Play:
    name: str
    hosts: str
    loc: Location
    base_dir: Path
    index: int = 0
    vars: dict[str, Any] = field(default_factory=dict)
    vars_files: list[tuple[str, Location]] = field(default_factory=list)
    serial: list[int | str] = field(default_factory=list)
    max_fail_percentage: float | None = None
    any_errors_fatal: bool = False
    strategy: Strategy = "linear"
    pre_tasks: list[Item] = field(default_factory=list)
    tasks: list[Item] = field(default_factory=list)
    post_tasks: list[Item] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    tags: frozenset[str] = frozenset()
    check_mode: bool | None = None
    diff: bool | None = None
    gather_facts: bool = False
    force_handlers: bool = False

    def sections(self) -> list[tuple[str, list[Item]]]:
        return [
            ("pre_tasks", self.pre_tasks),
            ("tasks", self.tasks),
            ("post_tasks", self.post_tasks),
        ]

    def handlers_for(self, name: str) -> list[Task]:
        """Handlers a ``notify: name`` reaches (by name, or by ``listen`` topic)."""
        return [h for h in self.handlers if h.name == name or name in h.listen]


@dataclass(eq=False)
class Playbook:
    path: Path
    plays: list[Play]
    files: list[Path] = field(default_factory=list)  # every file read (imports included)


def iter_tasks(items: list[Item]) -> list[Task]:
    """Every task of a list of items, blocks flattened, in order."""
    out: list[Task] = []
    for item in items:
        if isinstance(item, Block):
            out.extend(iter_tasks(item.block))
            out.extend(iter_tasks(item.rescue))
            out.extend(iter_tasks(item.always))
        else:
            out.append(item)
    return out
