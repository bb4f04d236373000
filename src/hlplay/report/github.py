"""GitHub Actions annotations: failed and unreachable hosts become ``::error`` lines.

Enabled automatically when ``GITHUB_ACTIONS=true``; each annotation points at
the task's line in the playbook, so the failure shows on the pull request.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from hlplay.engine.events import Event, Forged, HostResult, Warning_


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS", "").lower() == "true"


class GitHubAnnotations:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream if stream is not None else sys.stdout

    def handle(self, event: Event) -> None:
        if isinstance(event, HostResult) and event.status in ("failed", "unreachable"):
            props = []
            file, _, rest = event.task.location.partition(":")
            line = rest.split(":", 1)[0]
            if file:
                props.append(f"file={_prop(file)}")
            if line.isdigit():
                props.append(f"line={line}")
            kind = "unreachable" if event.status == "unreachable" else "failed"
            props.append(f"title={_prop(f'{event.task.name}: {event.host} {kind}')}")
            msg = str(event.result.get("msg") or kind)
            self.out.write(f"::error {','.join(props)}::{_data(msg)}\n")
            self.out.flush()
        elif isinstance(event, Forged):
            title = _prop(f"forged answer as {event.host}")
            text = f"not believed on {event.subject}: {event.code}: {event.reason}"
            self.out.write(f"::error title={title}::{_data(text)}\n")
        elif isinstance(event, Warning_):
            self.out.write(f"::warning::{_data(event.message)}\n")
