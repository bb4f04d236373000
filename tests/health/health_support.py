"""Test support for the health checks.

``monitor_server()``: a small Prometheus + Alertmanager stand-in, a real HTTP
server in a thread. It answers ``/api/v1/targets`` and ``/api/v2/alerts``
with the documents the test sets, the way the real APIs shape them, plus any
extra paths the test registers (status, body) for plain HTTP checks.

``full_disk(path)``: a real, full file system — a 1 MiB tmpfs mounted at
``path`` and filled up — or None where mounting is not allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def target(job: str, instance: str, health: str = "up", error: str = "") -> dict[str, Any]:
    return {
        "discoveredLabels": {"__address__": instance},
        "labels": {"job": job, "instance": instance},
        "scrapePool": job,
        "scrapeUrl": f"http://{instance}/metrics",
        "globalUrl": f"http://{instance}/metrics",
        "lastError": error,
        "lastScrape": "2024-05-01T10:00:00Z",
        "lastScrapeDuration": 0.01,
        "health": health,
    }


def alert(name: str, severity: str, state: str = "active", **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": f"{name} summary"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "2024-05-01T11:00:00Z",
        "updatedAt": "2024-05-01T10:00:00Z",
        "fingerprint": name.lower(),
        "receivers": [{"name": "default"}],
        "status": {
            "state": state,
            "silencedBy": ["s1"] if state == "suppressed" else [],
            "inhibitedBy": [],
        },
    }


@dataclass
class MonitorServer:
    url: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # path -> (status, body); a list is served one answer per request
    pages: dict[str, Any] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)


@contextmanager
def monitor_server() -> Iterator[MonitorServer]:
    state = MonitorServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            state.hits[path] = state.hits.get(path, 0) + 1
            if path.split("?")[0] == "/api/v1/targets":
                body: Any = {
                    "status": "success",
                    "data": {"activeTargets": state.targets, "droppedTargets": []},
                }
                self._send(200, json.dumps(body).encode(), "application/json")
            elif path == "/api/v2/alerts":
                self._send(200, json.dumps(state.alerts).encode(), "application/json")
            elif path in state.pages:
                page = state.pages[path]
                if isinstance(page, list):
                    page = page[min(state.hits[path], len(page)) - 1]
                status, text = page
                self._send(status, text.encode(), "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def full_disk(path: Path) -> Iterator[Path | None]:
    """A tmpfs at ``path`` with no free block left; None when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield None
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        with open(path / "fill", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass  # ENOSPC: the disk is full, which is the point
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
