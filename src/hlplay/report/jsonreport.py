"""The ``--json`` document, as the reporters know it.

The engine builds it on every run (``RunResult.document``), so the collector
lives with the engine, which must not import the reporters; this name stays
for callers that write the document as a reporter.
"""

from __future__ import annotations

from hlplay.engine.jsondoc import JsonCollector as JsonCollector
