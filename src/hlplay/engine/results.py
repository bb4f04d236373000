"""Per-host outcomes of tasks, the recap counters and the run's exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from hlplay.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE

Status = Literal["ok", "changed", "failed", "skipped", "unreachable", "rescued", "ignored"]
STATUSES: tuple[Status, ...] = (
    "ok",
    "changed",
    "failed",
    "skipped",
    "unreachable",
    "rescued",
    "ignored",
)


@dataclass
class HostStats:
    """One host's PLAY RECAP line (Ansible counts changed and ignored results as ok too)."""

    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failures: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def record(self, status: Status, changed: bool) -> None:
        if status == "ok":
            self.ok += 1
        elif status == "changed":
            self.ok += 1
            self.changed += 1
        elif status == "failed":
            self.failures += 1
        elif status == "skipped":
            self.skipped += 1
        elif status == "unreachable":
            self.unreachable += 1
        elif status == "rescued":
            self.rescued += 1
        elif status == "ignored":
            self.ok += 1
            self.ignored += 1
            if changed:
                self.changed += 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def exit_code(stats: Mapping[str, HostStats], interrupted: bool) -> int:
    """ansible-playbook's codes: 99 interrupted, 4 unreachable (before failed), 2 failed."""
    if interrupted:
        return EXIT_INTERRUPTED
    if any(s.unreachable for s in stats.values()):
        return EXIT_UNREACHABLE
    if any(s.failures for s in stats.values()):
        return EXIT_FAILED
    return EXIT_OK
