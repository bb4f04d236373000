"""The module interface: what a task action declares and how it runs.

A module declares its arguments (validated when the playbook loads, before
anything runs) and implements ``run`` — async, given the host's context and
its templated arguments, returning a :class:`ModuleResult`. Modules that act
on many hosts at once (a deploy published to one NATS subject reaching a whole
tier) set ``batch = True`` and implement ``run_batch`` as well; the engine then
calls it once per task step with every host of the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from hlplay.inventory.model import Host, Inventory
    from hlplay.transports.base import Transport

ARG_TYPES = ("str", "int", "float", "bool", "list", "dict", "raw", "path", "number")


@dataclass(frozen=True)
class Arg:
    """One module argument's schema."""

    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    elements: str | None = None  # element type for lists
    aliases: tuple[str, ...] = ()
    help: str = ""


class ArgError(ValueError):
    """Arguments do not match a module's schema; the message names the argument."""


@dataclass
class ModuleResult:
    """What a module returns for one host."""

    changed: bool = False
    failed: bool = False
    skipped: bool = False
    unreachable: bool = False
    msg: str = ""
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    diff: Any = None  # str (unified/nvd text) or {"before": ..., "after": ...}
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The shape a ``register:`` variable takes (Ansible-compatible keys)."""
        out: dict[str, Any] = dict(self.data)
        out.update(changed=self.changed, failed=self.failed, msg=self.msg)
        if self.skipped:
            out["skipped"] = True
        if self.unreachable:
            out["unreachable"] = True
        if self.rc is not None:
            out["rc"] = self.rc
        if self.rc is not None or self.stdout or self.stderr:
            out.update(
                stdout=self.stdout,
                stderr=self.stderr,
                stdout_lines=self.stdout.splitlines(),
                stderr_lines=self.stderr.splitlines(),
            )
        if self.diff is not None:
            out["diff"] = self.diff
        return out


@dataclass
class TaskContext:
    """Everything a module may use for one host of one task."""

    host: Host  # the host the task is for (inventory_hostname)
    inventory: Inventory
    vars: Mapping[str, Any]  # the host's variables, magic variables included
    transport: Transport  # reaches the host the task runs on (delegate_to applied)
    check_mode: bool = False
    diff_mode: bool = False
    timeout: float | None = None
    target: Host | None = None  # the host commands run on, when delegated
    run_state: dict[str, Any] = field(default_factory=dict)  # shared across a run

    @property
    def exec_host(self) -> Host:
        return self.target or self.host


class Module(ABC):
    """A task action. Subclasses set ``name`` and ``args`` and implement ``run``."""

    name: ClassVar[str]
    args: ClassVar[Mapping[str, Arg]] = {}
    #: argument that takes a free-form string (``command: ls -l``); None = no free form
    free_form: ClassVar[str | None] = None
    #: accept arguments not in ``args`` (e.g. set_fact, debug's var names)
    open_args: ClassVar[bool] = False
    #: whether the module can run under --check (otherwise it is skipped)
    supports_check: ClassVar[bool] = False
    #: whether the module runs on the controller regardless of the host's transport
    controller_side: ClassVar[bool] = False
    #: whether the engine should call run_batch with all hosts of a step
    batch: ClassVar[bool] = False
    #: one line of documentation
    summary: ClassVar[str] = ""

    @abstractmethod
    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        """Run for one host."""

    async def run_batch(
        self, ctxs: Sequence[TaskContext], args: Mapping[str, dict[str, Any]]
    ) -> dict[str, ModuleResult]:
        """Run for many hosts at once; ``args`` is keyed by host name."""
        out: dict[str, ModuleResult] = {}
        for ctx in ctxs:
            out[ctx.host.name] = await self.run(ctx, args[ctx.host.name])
        return out


def coerce(name: str, spec: Arg, value: Any) -> Any:
    """Convert one templated argument to its declared type, or raise ArgError."""
    if value is None:
        return None
    t = spec.type
    try:
        if t in ("raw",):
            return value
        if t in ("str", "path"):
            if isinstance(value, (dict, list)):
                raise ArgError(f"argument '{name}' must be a string")
            return str(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("yes", "true", "on", "1", "y"):
                return True
            if s in ("no", "false", "off", "0", "n", ""):
                return False
            raise ArgError(f"argument '{name}' must be a boolean, got {value!r}")
        if t == "int":
            if isinstance(value, bool):
                raise ArgError(f"argument '{name}' must be an integer")
            return int(value)
        if t in ("float", "number"):
            return float(value)
        if t == "list":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ArgError(f"argument '{name}' must be a list")
            if spec.elements:
                value = [coerce(name, Arg(type=spec.elements), v) for v in value]
            return value
        if t == "dict":
            if not isinstance(value, dict):
                raise ArgError(f"argument '{name}' must be a mapping")
            return value
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ArgError):
            raise
        raise ArgError(f"argument '{name}' must be of type {t}, got {value!r}") from None
    raise ArgError(f"argument '{name}' has unknown type {t}")


def check_choices(name: str, spec: Arg, value: Any) -> None:
    if spec.choices is not None and value is not None and value not in spec.choices:
        choices = ", ".join(str(c) for c in spec.choices)
        raise ArgError(f"argument '{name}' must be one of {choices}, got {value!r}")
