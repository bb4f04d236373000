"""``http_check``: GET a URL from the controller and check its status and body.

::

    - http_check:
        url: "http://{{ inventory_hostname }}/health"
        status: [200, 204]
        body_regex: '"status":\\s*"ok"'
        timeout: 5
        retries: 3
        delay: 2

Fails when no try gets an expected status (default 200) with a body matching
``body_regex``; the result has ``status``, ``attempts``, ``last_error``,
``elapsed`` and ``match`` (the matched text).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class HttpCheck(Module):
    name = "http_check"
    summary = "GET a URL from the controller: expected status, optional body regex, retries."
    supports_check = True
    controller_side = True
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg("str", required=True, help="http:// or https:// URL"),
        "status": Arg("raw", default=200, help="accepted status code, or a list of them"),
        "body_regex": Arg("str", help="a regular expression the body must match"),
        "timeout": Arg("float", default=10.0, help="seconds per request"),
        "retries": Arg("int", default=0, help="tries after the first"),
        "delay": Arg("float", default=1.0, help="seconds between tries"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.health.checks import Attempt, http_attempt
        from hlplay.health.http import UrlError, check_url

        try:
            url = check_url(str(args["url"]), "url")
        except UrlError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        pattern = None
        if args.get("body_regex"):
            try:
                pattern = re.compile(str(args["body_regex"]))
            except re.error as exc:
                return ModuleResult(failed=True, msg=f"body_regex is not a valid regex: {exc}")
        statuses = _statuses(args.get("status"))
        if not statuses:
            return ModuleResult(
                failed=True, msg=f"status must be HTTP status codes, got {args.get('status')!r}"
            )
        timeout = max(0.1, float(args.get("timeout") or 10.0))
        retries = max(0, int(args.get("retries") or 0))
        delay = max(0.0, float(args.get("delay") or 0.0))
        start = time.monotonic()
        attempt = Attempt(False, "not tried")
        tries = 0
        for tries in range(1, retries + 2):
            attempt = await http_attempt(url, timeout, statuses, pattern)
            if attempt.ok:
                break
            if tries <= retries:
                await asyncio.sleep(delay)
        data: dict[str, Any] = {
            "url": url,
            "status": attempt.data.get("status"),
            "attempts": tries,
            "elapsed": round(time.monotonic() - start, 3),
            "last_error": None if attempt.ok else attempt.message,
        }
        if "match" in attempt.data:
            data["match"] = attempt.data["match"]
        msg = attempt.message + (f" ({tries} tries)" if tries > 1 else "")
        return ModuleResult(failed=not attempt.ok, msg=msg, data=data)


def _statuses(value: Any) -> list[int]:
    """``200``, ``"200"``, ``[200, 204]`` or ``"200,204"`` as codes; [] when not codes."""
    if value is None:
        return [200]
    items = value if isinstance(value, list) else str(value).split(",")
    out: list[int] = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or not 100 <= int(text) <= 599:
            return []
        out.append(int(text))
    return out
