"""A JUnit XML report (``--junit-xml PATH``): a test suite per play, a case per host and task.

CI systems show failed and unreachable hosts as failures and errors, skipped
tasks as skipped; ok, changed, rescued and ignored results pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from hlplay.engine.events import Event, HostResult, PlaybookEnded, PlayStarted


class JUnitReporter:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._suites: list[tuple[str, list[HostResult]]] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, PlayStarted):
            self._suites.append((event.name, []))
        elif isinstance(event, HostResult):
            if not self._suites:
                self._suites.append(("play", []))
            self._suites[-1][1].append(event)
        elif isinstance(event, PlaybookEnded):
            self.write(event.duration)

    def write(self, duration: float) -> None:
        root = ET.Element("testsuites", name="hlplay", time=f"{duration:.3f}")
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for name, results in self._suites:
            suite = ET.SubElement(root, "testsuite", name=name)
            counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
            elapsed = 0.0
            for r in results:
                counts["tests"] += 1
                elapsed += r.duration
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"{name}.{r.host}",
                    name=r.task.name,
                    time=f"{r.duration:.3f}",
                )
                msg = str(r.result.get("msg", ""))
                detail = json.dumps(r.result, sort_keys=True, default=str, indent=2)
                if r.status == "failed":
                    counts["failures"] += 1
                    ET.SubElement(case, "failure", message=msg or "failed").text = detail
                elif r.status == "unreachable":
                    counts["errors"] += 1
                    ET.SubElement(case, "error", message=msg or "unreachable").text = detail
                elif r.status == "skipped":
                    counts["skipped"] += 1
                    reason = str(r.result.get("skip_reason") or msg or "skipped")
                    ET.SubElement(case, "skipped", message=reason)
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            suite.set("time", f"{elapsed:.3f}")
        for key, value in totals.items():
            root.set(key, str(value))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(self.path, encoding="utf-8", xml_declaration=True)
