"""A small HTTP GET for health checks and monitoring APIs, off the event loop.

urllib in a worker thread: no new dependency, and a slow server blocks one
thread, never the run. Only ``http`` and ``https`` URLs are fetched, and
redirects are not followed: a 3xx status is the answer.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hlplay.errors import HlplayError

MAX_BODY = 4 * 1024 * 1024  # monitoring answers are small; a huge body is an error


class HttpError(Exception):
    """The request did not produce a response (refused, timed out, bad TLS…)."""


class UrlError(HlplayError):
    """A URL hlplay will not fetch."""


@dataclass
class HttpResponse:
    url: str
    status: int
    body: bytes
    elapsed: float

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def check_url(url: str, what: str = "URL") -> str:
    """``url`` when it is an absolute http(s) URL; a one-line UrlError otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- reading it validates the port
    except ValueError as exc:  # a broken [IPv6] host, a port that is not a number …
        raise UrlError(f"{what} is not a valid URL ({exc}): {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UrlError(f"{what} must be an http:// or https:// URL, got {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlError(f"{what} contains whitespace: {url!r}")
    return url


def join_url(base: str, path: str) -> str:
    """``base`` (which may carry a path prefix such as ``/prometheus``) plus ``path``."""
    return base.rstrip("/") + "/" + path.lstrip("/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (a 3xx status), never followed to another place."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _get(url: str, timeout: float, headers: dict[str, str]) -> HttpResponse:
    start = time.monotonic()
    # only http(s) URLs get here: http_get checks first
    req = urllib.request.Request(url, headers={"User-Agent": "hlplay-health", **headers})  # noqa: S310
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            body = resp.read(MAX_BODY + 1)
            status = int(resp.status)
    except urllib.error.HTTPError as exc:  # 4xx/5xx still answer: keep the status
        body = exc.read(MAX_BODY + 1) if exc.fp is not None else b""
        status = int(exc.code)
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise HttpError(
            str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
        ) from None
    except TimeoutError:
        raise HttpError(f"timed out after {timeout:g}s") from None
    except (OSError, ValueError) as exc:
        raise HttpError(str(exc) or type(exc).__name__) from None
    if len(body) > MAX_BODY:
        raise HttpError(f"response larger than {MAX_BODY // (1024 * 1024)} MiB")
    return HttpResponse(url, status, body, round(time.monotonic() - start, 3))


async def http_get(
    url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> HttpResponse:
    """GET ``url``; any status is a response, no response raises :class:`HttpError`."""
    check_url(url)
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_get, url, timeout, dict(headers or {})), timeout + 1
        )
    except TimeoutError:
        raise HttpError(f"timed out after {timeout:g}s") from None
