"""The ``--json`` document: plays → tasks → per-host results, and the recap stats.

The shape follows Ansible's ``json`` callback (``plays[].play``,
``plays[].tasks[].task``, ``plays[].tasks[].hosts``, ``stats``) so tools
written for it read ours, plus ``exit_code``, ``interrupted`` and ``warnings``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hlplay.engine.events import (
    BatchStarted,
    Event,
    Forged,
    HostResult,
    NoHostsMatched,
    NoMoreHosts,
    PlaybookEnded,
    PlaybookStarted,
    PlayEnded,
    PlayStarted,
    TaskStarted,
    Warning_,
)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class JsonCollector:
    """Builds the document as events arrive; ``document`` is complete after the run."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {
            "playbook": "",
            "check_mode": False,
            "diff_mode": False,
            "plays": [],
            "stats": {},
            "warnings": [],
            # answers not believed: they did not prove they came from the host named
            "forged": [],
            "exit_code": None,
            "interrupted": False,
        }
        self._play: dict[str, Any] | None = None
        self._tasks: dict[tuple[int, int], dict[str, Any]] = {}
        self._batch = 0

    def handle(self, event: Event) -> None:
        doc = self.document
        if isinstance(event, PlaybookStarted):
            doc.update(playbook=event.path, check_mode=event.check, diff_mode=event.diff)
        elif isinstance(event, PlayStarted):
            self._play = {
                "play": {
                    "id": event.index,
                    "name": event.name,
                    "pattern": event.pattern,
                    "hosts": list(event.hosts),
                    "strategy": event.strategy,
                    "duration": {"start": _now(), "end": None},
                },
                "tasks": [],
            }
            self._tasks = {}
            self._batch = 0
            doc["plays"].append(self._play)
        elif isinstance(event, BatchStarted):
            self._batch = event.index
        elif isinstance(event, TaskStarted):
            self._task_entry(
                event.task.id, event.task.name, event.task.action, event.task.is_handler
            )
        elif isinstance(event, HostResult):
            entry = self._task_entry(
                event.task.id, event.task.name, event.task.action, event.task.is_handler
            )
            result = dict(event.result)
            result["action"] = event.task.action
            result["status"] = event.status
            if event.delegated_to:
                result["delegated_to"] = event.delegated_to
            result["duration"] = round(event.duration, 6)
            entry["hosts"][event.host] = result
            entry["task"]["duration"]["end"] = _now()
        elif isinstance(event, Forged):
            doc["forged"].append(
                {
                    "host": event.host,
                    "subject": event.subject,
                    "code": event.code,
                    "reason": event.reason,
                    "request_id": event.request_id,
                    "key": event.key,
                }
            )
        elif isinstance(event, Warning_):
            doc["warnings"].append(event.message)
        elif isinstance(event, NoHostsMatched) and self._play is not None:
            self._play["play"]["skipped"] = "no hosts matched"
        elif isinstance(event, NoMoreHosts) and self._play is not None:
            self._play["play"]["stopped"] = event.reason
        elif isinstance(event, PlayEnded) and self._play is not None:
            self._play["play"]["duration"]["end"] = _now()
        elif isinstance(event, PlaybookEnded):
            doc["stats"] = {h: s.to_dict() for h, s in event.stats.items()}
            doc["exit_code"] = event.exit_code
            doc["interrupted"] = event.interrupted
            doc["duration"] = round(event.duration, 6)

    def _task_entry(self, task_id: int, name: str, action: str, handler: bool) -> dict[str, Any]:
        key = (task_id, self._batch)
        entry = self._tasks.get(key)
        if entry is None:
            entry = {
                "task": {
                    "id": task_id,
                    "name": name,
                    "action": action,
                    "handler": handler,
                    "duration": {"start": _now(), "end": None},
                },
                "hosts": {},
            }
            self._tasks[key] = entry
            if self._play is not None:
                self._play["tasks"].append(entry)
        return entry
