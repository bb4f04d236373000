"""The event stream a run produces; reporters (console, JSON …) consume it.

Events are plain frozen dataclasses, emitted in order on the event loop's
thread. A reporter is anything with ``handle(event)``; a reporter that raises
is dropped from the run with a warning rather than stopping it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hlplay.engine.results import HostStats, Status


@dataclass(frozen=True)
class TaskInfo:
    id: int
    name: str
    action: str
    is_handler: bool = False
    location: str = ""
    no_log: bool = False
    check_mode: bool = False


@dataclass(frozen=True)
class PlaybookStarted:
    path: str
    check: bool = False
    diff: bool = False


@dataclass(frozen=True)
class PlayStarted:
    name: str
    pattern: str
    hosts: tuple[str, ...]
    index: int
    strategy: str = "linear"
    check: bool = False


@dataclass(frozen=True)
class NoHostsMatched:
    play: str


@dataclass(frozen=True)
class BatchStarted:
    index: int  # 1-based
    total: int
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class TaskStarted:
    task: TaskInfo


@dataclass(frozen=True)
class HostResult:
    """The outcome of one task on one host (a loop's items summed up)."""

    host: str
    task: TaskInfo
    status: Status
    result: dict[str, Any]
    delegated_to: str | None = None
    duration: float = 0.0
    is_loop: bool = False
    diff_mode: bool = False


@dataclass(frozen=True)
class ItemResult:
    """One loop item's outcome on one host."""

    host: str
    task: TaskInfo
    status: Status
    label: str
    result: dict[str, Any]
    delegated_to: str | None = None
    diff_mode: bool = False


@dataclass(frozen=True)
class RetryAttempt:
    host: str
    task: TaskInfo
    attempt: int
    retries_left: int
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Warning_:
    message: str


@dataclass(frozen=True)
class Forged:
    """An answer the run's transports refused to believe: it did not prove it
    came from the host it names (never counted for that host)."""

    host: str
    subject: str
    code: str
    reason: str
    request_id: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class NoMoreHosts:
    reason: str = ""


@dataclass(frozen=True)
class PlayEnded:
    name: str


@dataclass(frozen=True)
class PlaybookEnded:
    stats: dict[str, HostStats]
    exit_code: int
    interrupted: bool
    duration: float


Event = (
    PlaybookStarted
    | PlayStarted
    | NoHostsMatched
    | BatchStarted
    | TaskStarted
    | HostResult
    | ItemResult
    | RetryAttempt
    | Warning_
    | Forged
    | NoMoreHosts
    | PlayEnded
    | PlaybookEnded
)


class Reporter(Protocol):
    def handle(self, event: Event) -> None: ...


class EventBus:
    """Fans events out to reporters."""

    def __init__(self, reporters: Sequence[Reporter] = ()) -> None:
        self.reporters: list[Reporter] = list(reporters)

    def emit(self, event: Event) -> None:
        for reporter in list(self.reporters):
            try:
                reporter.handle(event)
            except Exception as exc:  # a broken reporter must not stop the run
                self.reporters.remove(reporter)
                print(
                    f"[WARNING]: reporter {type(reporter).__name__} failed and was removed: "
                    f"{type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
