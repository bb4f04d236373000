"""The listener agent: serves deploy requests, discovery and fact queries over NATS.

One listener runs on each host (``hlplay listen``). It subscribes to the
subjects expanded from its templates — its host, its tier's ``all`` subject,
one per role — plus discovery, facts and confirmation, and answers a deploy
request with a stream of responses:

``rejected`` (validation failed, busy, shutting down), or ``accepted`` →
``started`` → ``started`` + ``progress`` lines (rate-limited) → ``completed`` |
``failed`` with ``duration`` and what the executor reports.

Requests that carry an ``id`` are idempotent: the same id again while it runs
gets ``started`` (and the final status, when it comes, on the new reply
subject too); after it ran, the stored final status is sent again. That is
how a controller recovers a final status lost while the NATS server was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlplay import __version__
from hlplay.deploy import harness
from hlplay.deploy.contract import ExecContext, ExecResult, Executor, load_executor
from hlplay.deploy.facts import collect_facts
from hlplay.errors import HlplayError
from hlplay.inventory.model import DEFAULT_PROFILE, DEFAULT_TOPLEVEL_ATTR, SubjectTemplates
from hlplay.proc import CommandResult, run_argv
from hlplay.protocol import signing
from hlplay.protocol.messages import (
    AWAITING_CONFIRMATION,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    DeployRequest,
    DeployResponse,
    ErrorCode,
    ProtocolError,
    is_reply_subject,
    is_request_id,
    is_subject_token,
    salvage_reply,
)
from hlplay.protocol.subjects import (
    ListenerSubjects,
    SubjectError,
    listener_subjects,
    template_problem,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

log = logging.getLogger("hlplay.listener")

FINISHED_KEPT = 256  # final statuses remembered for replays, by request id
PROGRESS_BATCH_MAX = 200  # lines kept between two progress messages
PROGRESS_LINE_MAX = 2000
#: The run in flight, in the state directory (see Listener._journal).
JOURNAL = "run-in-flight.json"
#: How long past its confirmation window a run waits for a verdict in flight
#: before it claims the canary itself.
VERDICT_GRACE = 5.0
RESEND_DELAY = 1.0  # after a reconnect, finals produced offline are sent again


# subject template -> the ``hlplay listen`` flag that sets it
TEMPLATE_FLAGS = {
    "host": "--subject-host",
    "tier": "--subject-tier",
    "role": "--subject-role",
    "discover": "--discover-subject",
    "facts": "--facts-subject",
    "confirm": "--confirm-subject",
}


class ListenerError(HlplayError):
    """The listener cannot start (bad options, credentials refused)."""


@dataclass(frozen=True)
class ListenerConfig:
    hostname: str
    tier: str
    roles: tuple[str, ...] = ()
    nats_urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    nkey_file: str | None = None
    nkey_seed: str | None = None  # the seed itself, for in-process fleets (bench)
    flake: str = "."
    profile: str = DEFAULT_PROFILE
    toplevel_attr: str = DEFAULT_TOPLEVEL_ATTR
    executor: str = "nix"
    timeout: float = 3600.0
    subjects: SubjectTemplates = field(default_factory=SubjectTemplates)
    state_dir: str | None = None
    units_dir: str | None = None
    disk_paths: tuple[str, ...] = ("/",)
    progress_interval: float = 0.5
    shutdown_grace: float = 60.0
    reconnect_wait: float = 0.5
    #: deployer public keys whose signed requests this host accepts (``--trusted-keys``)
    trusted_keys: frozenset[str] | None = None
    #: take requests without a signature too (``--accept-unsigned``); signed ones
    #: are still checked
    accept_unsigned: bool = False
    #: the seed this listener signs its answers with (``--signing-seed``);
    #: default: its NATS seed
    signing_seed: str | None = None
    signature_window: float = signing.DEFAULT_WINDOW
    #: sign every answer (off only for a benchmark's unsigned baseline)
    sign_answers: bool = True
    #: generations the system profile keeps after a switch (``--keep-generations``)
    keep_generations: int = 10

    def check(self) -> ListenerSubjects:
        """Validate names and templates; return the subjects to subscribe to."""
        for what, value in (("hostname", self.hostname), ("tier", self.tier)):
            if not is_subject_token(value):
                raise ListenerError(
                    f"--{what} {value!r} is not a valid name (letters, digits, '-' and '_' only)"
                )
        for role in self.roles:
            if not is_subject_token(role):
                raise ListenerError(
                    f"--role {role!r} is not a valid name (letters, digits, '-' and '_' only)"
                )
        if not self.timeout > 0:
            raise ListenerError("--timeout must be a positive number of seconds")
        if self.progress_interval < 0:
            raise ListenerError("--progress-interval must not be negative")
        if not self.nats_urls:
            raise ListenerError("at least one --nats-url is needed")
        from hlplay.inventory.settings import nats_url_problem

        for url in self.nats_urls:
            problem = nats_url_problem(url)
            if problem is not None:
                raise ListenerError(f"--nats-url: {problem}")
        websocket = {url.startswith(("ws://", "wss://")) for url in self.nats_urls}
        if len(websocket) > 1:
            raise ListenerError("--nats-url: do not mix websocket (ws://, wss://) and other URLs")
        for key, flag in TEMPLATE_FLAGS.items():
            template = getattr(self.subjects, key)
            problem = template_problem(key, template)
            if problem is not None:
                raise ListenerError(f"{flag} {template!r}: {problem}")
        try:
            return listener_subjects(
                self.subjects, hostname=self.hostname, tier=self.tier, roles=self.roles
            )
        except SubjectError as exc:
            raise ListenerError(str(exc)) from None


Send = Callable[[DeployResponse], Awaitable[None]]


class _ProgressBatcher:
    """Sends progress lines at most once per interval, batching the lines between."""

    def __init__(
        self, send: Send, make: Callable[[list[str], int], DeployResponse], interval: float
    ) -> None:
        self._send = send
        self._make = make
        self._interval = interval
        self._pending: list[str] = []
        self._dropped = 0
        self._last = 0.0
        self._timer: asyncio.Task[None] | None = None

    async def line(self, text: str) -> None:
        self._pending.append(text[:PROGRESS_LINE_MAX])
        if len(self._pending) > PROGRESS_BATCH_MAX:
            del self._pending[0]
            self._dropped += 1
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._later(wait))

    async def _later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        lines, dropped = self._pending, self._dropped
        self._pending, self._dropped = [], 0
        self._last = time.monotonic()
        await self._send(self._make(lines, dropped))


class _Run:
    """One deploy request being performed."""

    def __init__(self, request: DeployRequest, reply: str) -> None:
        self.request = request
        self.replies: list[str] = [reply] if reply else []
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.exec_task: asyncio.Task[ExecResult] | None = None
        self.ctx: ExecContext | None = None
        #: activated, the watchdog armed: the controller's confirm or reject ends it
        self.awaiting = False
        self.settling = False  # a confirm or reject is being carried out
        self.settled = asyncio.Event()
        self.verdict: ExecResult | None = None
        #: the id a confirmation names: the request's, or the one the executor
        #: gave a request without (it is in the awaiting_confirmation status)
        self.confirm_id: str | None = request.id

    def add_reply(self, reply: str) -> None:
        if reply and reply not in self.replies:
            self.replies.append(reply)


class Listener:
    """A listener for one host. ``await serve()`` runs it until SIGTERM or :meth:`stop`."""

    def __init__(self, config: ListenerConfig, executor: Executor | None = None) -> None:
        self.config = config
        self.subjects = config.check()
        try:
            self.executor = executor or load_executor(config.executor)
        except (ValueError, ImportError) as exc:
            raise ListenerError(f"--executor {config.executor}: {exc}") from None
        self.nc: Client | None = None
        self._run: _Run | None = None
        self._finished: OrderedDict[str, DeployResponse] = OrderedDict()
        self._undelivered: list[tuple[str, bytes]] = []
        self._stopping = False
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._auth_failed: str | None = None
        self._told_unreachable = False  # said once that the server cannot be reached yet
        self._auth_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._exit_error: str | None = None
        self._signer = _signer_of(config) if config.sign_answers else None
        self._guard = signing.ReplayGuard(window=config.signature_window)

    # -- the context executors act in ---------------------------------------------

    def _context(self, progress: Any = None) -> ExecContext:
        cfg = self.config

        async def runner(argv: Sequence[str], timeout: float | None) -> CommandResult:
            return await run_argv(argv, timeout=timeout, on_line=progress)

        ctx = ExecContext(
            hostname=cfg.hostname,
            tier=cfg.tier,
            roles=cfg.roles,
            runner=runner,
            flake=cfg.flake,
            profile=cfg.profile,
            toplevel_attr=cfg.toplevel_attr,
            state_dir=cfg.state_dir,
            # Context options are the host's own settings, never the request's:
            # executors read what a request asks from ``request.options``.
            options={
                **({"units_dir": cfg.units_dir} if cfg.units_dir else {}),
                "keep_generations": cfg.keep_generations,
            },
        )
        if progress is not None:
            ctx.progress = progress
        return ctx

    # -- connection ---------------------------------------------------------------

    async def _error_cb(self, exc: Exception) -> None:
        text = str(exc)
        if "Authorization Violation" in text or type(exc).__name__ == "AuthorizationError":
            self._auth_failed = text or "authorization violation"
            self._auth_event.set()
            return
        if "permissions violation" in text:
            log.warning("%s: NATS refused: %s", self.config.hostname, text)
            return
        if isinstance(exc, OSError | TimeoutError) or "UnexpectedEOF" in type(exc).__name__:
            nc = self.nc
            if not self._told_unreachable and (nc is None or not nc.is_connected):
                # Waiting for the server is normal at boot, but silence would hide a typo.
                self._told_unreachable = True
                log.warning(
                    "%s: cannot reach NATS at %s yet (%s); retrying until it answers",
                    self.config.hostname,
                    ", ".join(self.config.nats_urls),
                    text or type(exc).__name__,
                )
                return
            log.debug("%s: NATS connection: %s", self.config.hostname, text or type(exc).__name__)
            return
        log.warning("%s: NATS error: %s", self.config.hostname, text or type(exc).__name__)

    async def _disconnected_cb(self) -> None:
        if not self._stop.is_set():
            log.warning("%s: disconnected from NATS; reconnecting", self.config.hostname)

    async def _reconnected_cb(self) -> None:
        log.warning("%s: reconnected to NATS", self.config.hostname)
        if self._undelivered:
            self._spawn(self._resend_undelivered())

    async def _closed_cb(self) -> None:
        if not self._stopping:
            self._exit_error = "the NATS connection closed for good"
            self._stop.set()

    async def connect(self) -> bool:
        """Connect to NATS, waiting for the server as long as it takes; False if stopped first."""
        from nats.aio.client import Client as NATS

        cfg = self.config
        kwargs: dict[str, Any] = {}
        if cfg.nkey_seed:
            kwargs["nkeys_seed_str"] = cfg.nkey_seed
        elif cfg.nkey_file:
            kwargs["nkeys_seed_str"] = read_nkey_file(cfg.nkey_file)
        nc = NATS()
        self.nc = nc
        connecting = asyncio.create_task(
            nc.connect(
                servers=list(cfg.nats_urls),
                name=f"hlplay-listener {cfg.hostname}",
                error_cb=self._error_cb,
                disconnected_cb=self._disconnected_cb,
                reconnected_cb=self._reconnected_cb,
                closed_cb=self._closed_cb,
                max_reconnect_attempts=-1,
                reconnect_time_wait=cfg.reconnect_wait,  # type: ignore[arg-type]
                connect_timeout=2,
                ping_interval=20,
                max_outstanding_pings=3,
                **kwargs,
            )
        )
        auth = asyncio.create_task(self._auth_event.wait())
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({connecting, auth, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            auth.cancel()
            stop.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            with contextlib.suppress(Exception):
                await nc.close()
            if self._auth_failed:
                raise ListenerError(
                    f"NATS at {', '.join(cfg.nats_urls)} refused this listener's credentials "
                    f"({self._auth_failed}); check --nkey-file and the server's users"
                )
            return False
        connecting.result()
        return True

    async def start(self) -> None:
        """Connect and subscribe; returns once the listener is serving (or was stopped)."""
        if not await self.connect():
            return
        nc = self.nc
        assert nc is not None
        for subject in self.subjects.deploy:
            await nc.subscribe(subject, cb=self._on_deploy)
        await nc.subscribe(self.subjects.discover, cb=self._on_discover)
        await nc.subscribe(self.subjects.facts, cb=self._on_facts)
        await nc.subscribe(self.subjects.confirm, cb=self._on_confirm)
        await nc.flush(timeout=5)
        if self.config.accept_unsigned:
            log.warning(
                "%s: --accept-unsigned: requests without a signature are taken too "
                "(anyone who may publish to this host's subjects can deploy it)",
                self.config.hostname,
            )
        elif self.config.trusted_keys is not None:
            log.info(
                "%s: taking requests signed by %d trusted key(s)",
                self.config.hostname,
                len(self.config.trusted_keys),
            )
        self._resume()
        log.info(
            "%s: ready (tier %s, executor %s); subscribed to %s",
            self.config.hostname,
            self.config.tier,
            self.executor.name,
            ", ".join(self.subjects.all()),
        )

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Start, serve until stopped, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        if self._exit_error:
            raise ListenerError(self._exit_error)

    # -- the run in flight, kept on disk ---------------------------------------------

    def _journal_path(self) -> Path | None:
        return Path(self.config.state_dir) / JOURNAL if self.config.state_dir else None

    def _journal(self, run: _Run, state: dict[str, Any] | None) -> None:
        """Keep (``state``) or drop (None) what a listener started after this one needs.

        A deploy whose new system restarts this listener (its unit, package
        or keys changed), or a listener killed mid-run, must not lose the run:
        the next listener reads this, finds where the host is and reports the
        final status to the same controller.
        """
        path = self._journal_path()
        if path is None:
            return
        try:
            if state is None:
                path.unlink(missing_ok=True)
                return
            req = run.request
            doc = {
                "request": {
                    "action": req.action,
                    "revision": req.revision,
                    "id": req.id,
                    "options": req.options,
                },
                "replies": run.replies,
                "state": state,
            }
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, default=str))
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError) as exc:  # the run goes on without it
            log.warning("%s: cannot keep the run's state: %s", self.config.hostname, exc)

    def _resume(self) -> None:
        """Take over a run the previous listener left in flight, if any."""
        path = self._journal_path()
        if path is None or not path.exists():
            return
        try:
            doc = json.loads(path.read_text())
            raw = doc["request"]
            req = DeployRequest.parse(json.dumps({**raw, "reply_to": ""}))
            replies = [r for r in doc.get("replies", []) if is_reply_subject(r)]
            state = doc.get("state") or {}
            if not isinstance(state, dict):
                raise ValueError("state is not an object")
        except (OSError, ValueError, KeyError, TypeError, ProtocolError) as exc:
            log.warning("%s: unreadable run state %s: %s", self.config.hostname, path, exc)
            path.unlink(missing_ok=True)
            return
        run = _Run(req, "")
        run.replies = replies
        self._run = run
        log.info(
            "%s: resuming %s of %s (request %s) left in flight",
            self.config.hostname,
            req.action,
            req.revision,
            req.id or "-",
        )
        run.task = asyncio.create_task(self._resume_run(run, state))
        self._tasks.add(run.task)
        run.task.add_done_callback(self._tasks.discard)

    async def _resume_run(self, run: _Run, state: dict[str, Any]) -> None:
        ctx = self._context()
        run.ctx = ctx
        if state.get("phase") in ("activating", "awaiting"):
            try:
                result = await self.executor.resume(state, ctx)
            except Exception as exc:  # reported, never a crash of the new listener
                log.exception("%s: resuming failed", self.config.hostname)
                result = ExecResult(
                    ok=False, error=ErrorCode.INTERRUPTED, message=f"resuming failed: {exc}"
                )
        else:
            result = ExecResult(
                ok=False,
                error=ErrorCode.INTERRUPTED,
                message="the listener stopped before the activation: nothing was activated",
            )
        await self._conclude(run, result)

    def stop(self) -> None:
        """Ask the listener to stop (what SIGTERM does)."""
        if not self._stopping:
            log.info("%s: stopping; no new requests are taken", self.config.hostname)
        self._stopping = True
        self._stop.set()

    async def shutdown(self, grace: float | None = None) -> None:
        """Refuse new requests, finish (or abort) the run, deliver its final status."""
        self._stopping = True
        self._stop.set()
        grace = self.config.shutdown_grace if grace is None else grace
        run = self._run
        if run is not None and run.task is not None:
            done, _ = await asyncio.wait({run.task}, timeout=grace)
            if not done:
                log.warning("%s: aborting the run after %gs", self.config.hostname, grace)
                if run.exec_task is not None:
                    run.exec_task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(run.task, 15)
        nc = self.nc
        if nc is not None and not nc.is_closed:
            if self._undelivered:
                # A final status produced while disconnected: wait for the server a while.
                for _ in range(100):
                    if nc.is_connected:
                        break
                    await asyncio.sleep(0.1)
                await self._resend_undelivered(delay=0)
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 5)
            with contextlib.suppress(Exception):
                await nc.close()
        for task in list(self._tasks):
            task.cancel()
        self._stopped.set()

    @property
    def busy(self) -> bool:
        return self._run is not None

    # -- sending ------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _response(
        self,
        status: str,
        *,
        error: ErrorCode | str | None = None,
        message: str = "",
        req_id: str | None = None,
        **extra: Any,
    ) -> DeployResponse:
        code = error.value if isinstance(error, ErrorCode) else error
        return DeployResponse(
            hostname=self.config.hostname,
            status=status,
            error=code,
            message=message,
            id=req_id,
            extra=extra,
        )

    async def _publish(self, subject: str, data: bytes, *, final: bool = False) -> None:
        nc = self.nc
        if not subject or nc is None:
            return
        if final and not nc.is_connected:
            self._undelivered.append((subject, data))
        try:
            await nc.publish(subject, data)
        except Exception as exc:  # a reply that cannot go out must not stop us
            log.warning(
                "%s: cannot publish to %s: %s",
                self.config.hostname,
                subject,
                str(exc) or type(exc).__name__,
            )
            if final and (subject, data) not in self._undelivered:
                self._undelivered.append((subject, data))

    def _encode(self, doc: dict[str, Any]) -> bytes:
        """A reply as sent: signed with this host's key, so no other host can forge it."""
        if self._signer is not None:
            doc = signing.sign(doc, self._signer)
        return json.dumps(doc, default=str).encode()

    def _authenticate(self, doc: Any) -> signing.SignedBy | None:
        """Who signed ``doc``, or None for an unsigned message this host accepts.

        Raises :class:`~hlplay.protocol.signing.SignatureError`.
        """
        cfg = self.config
        if not isinstance(doc, dict) or signing.SIG_FIELD not in doc:
            if cfg.accept_unsigned:
                return None
            raise signing.SignatureError(
                ErrorCode.UNSIGNED, "unsigned request: this host takes signed requests only"
            )
        return signing.verify(doc, cfg.trusted_keys, window=cfg.signature_window)

    async def _send(self, subjects: Sequence[str], resp: DeployResponse) -> None:
        data = self._encode(json.loads(resp.to_json()))
        for subject in subjects:
            await self._publish(subject, data, final=resp.final)
        if resp.final and self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=5)

    async def _resend_undelivered(self, delay: float = RESEND_DELAY) -> None:
        # Sent again a moment after reconnecting: the controller's inbox
        # subscription may come back after ours.
        await asyncio.sleep(delay)
        nc = self.nc
        if nc is None or not nc.is_connected:
            return
        pending, self._undelivered = self._undelivered, []
        for subject, data in pending:
            with contextlib.suppress(Exception):
                await nc.publish(subject, data)
        with contextlib.suppress(Exception):
            await nc.flush(timeout=5)
        if pending:
            log.info(
                "%s: delivered %d final status(es) after reconnecting",
                self.config.hostname,
                len(pending),
            )

    # -- deploy requests ------------------------------------------------------------

    async def _on_deploy(self, msg: Msg) -> None:
        try:
            await self._handle_deploy(msg)
        except Exception:  # one bad request never stops the listener
            log.exception("%s: error handling a request on %s", self.config.hostname, msg.subject)

    async def _handle_deploy(self, msg: Msg) -> None:
        try:
            req = DeployRequest.parse(msg.data)
        except ProtocolError as exc:
            reply_to, req_id = salvage_reply(msg.data)
            log.info(
                "%s: rejected a request on %s: %s", self.config.hostname, msg.subject, exc.message
            )
            await self._send(
                [reply_to or msg.reply],
                self._response("rejected", error=exc.code, message=exc.message, req_id=req_id),
            )
            return
        reply = req.reply_to or msg.reply
        try:
            doc = json.loads(msg.data)
            signed = self._authenticate(doc)
            _check_target(doc, msg.subject, signed)
        except signing.SignatureError as exc:
            log.warning(
                "%s: refused a request on %s: %s", self.config.hostname, msg.subject, exc.message
            )
            await self._send(
                [reply],
                self._response("rejected", error=exc.code, message=exc.message, req_id=req.id),
            )
            return
        if req.id is not None:
            done = self._finished.get(req.id)
            if done is not None:
                await self._send([reply], done)
                return
            run = self._run
            if run is not None and run.request.id == req.id:
                run.add_reply(reply)
                await self._send(
                    [reply],
                    self._response(
                        "started",
                        message="already running this request",
                        req_id=req.id,
                        action=req.action,
                    ),
                )
                return
        if self._stopping:
            await self._send(
                [reply],
                self._response(
                    "rejected",
                    error=ErrorCode.SHUTTING_DOWN,
                    message="the listener is shutting down",
                    req_id=req.id,
                ),
            )
            return
        current = self._run
        if current is not None:
            running = current.request
            await self._send(
                [reply],
                self._response(
                    "rejected",
                    error=ErrorCode.ALREADY_RUNNING,
                    message=f"a {running.action} of {running.revision} is already running "
                    f"(for {time.monotonic() - current.started:.0f}s"
                    + (f", request {running.id})" if running.id else ")"),
                    req_id=req.id,
                ),
            )
            return
        if signed is not None:
            # Replays are told apart after the answers above, which run nothing:
            # a controller asking again after a reconnect gets the run's status.
            try:
                self._guard.check(signed, window=self.config.signature_window)
            except signing.SignatureError as exc:
                await self._send(
                    [reply],
                    self._response("rejected", error=exc.code, message=exc.message, req_id=req.id),
                )
                return
        run = _Run(req, reply)
        self._run = run  # no await since the check above: the lock is atomic
        log.info(
            "%s: %s %s (request %s) from %s",
            self.config.hostname,
            req.action,
            req.revision,
            req.id or "-",
            msg.subject,
        )
        await self._send(
            run.replies,
            self._response(
                "accepted", message=f"{req.action} of {req.revision} accepted", req_id=req.id
            ),
        )
        await self._send(
            run.replies,
            self._response(
                "started",
                message=f"running {req.action} of {req.revision} with {self.executor.name}",
                req_id=req.id,
                action=req.action,
            ),
        )
        self._journal(run, {"phase": "started"})
        run.task = asyncio.create_task(self._execute(run))
        self._tasks.add(run.task)
        run.task.add_done_callback(self._tasks.discard)

    def _run_timeout(self, req: DeployRequest) -> float:
        timeout = self.config.timeout
        asked = req.options.get("timeout")
        if isinstance(asked, int | float) and not isinstance(asked, bool) and 0 < asked < timeout:
            timeout = float(asked)
        return timeout

    async def _execute(self, run: _Run) -> None:
        req = run.request

        async def send_progress(resp: DeployResponse) -> None:
            await self._send(run.replies, resp)

        def make_progress(lines: list[str], dropped: int) -> DeployResponse:
            extra: dict[str, Any] = {"progress": lines}
            if dropped:
                extra["progress_dropped"] = dropped
            return self._response("started", message=lines[-1], req_id=req.id, **extra)

        batcher = _ProgressBatcher(send_progress, make_progress, self.config.progress_interval)
        ctx = self._context(batcher.line)

        async def checkpoint(state: dict[str, Any]) -> None:
            self._journal(run, state)

        ctx.checkpoint = checkpoint
        run.ctx = ctx
        timeout = self._run_timeout(req)
        run.exec_task = asyncio.ensure_future(
            harness.execute(self.executor, req, ctx, timeout=timeout)
        )
        await asyncio.wait({run.exec_task})
        if run.exec_task.cancelled():
            result = ExecResult(
                ok=False,
                error=ErrorCode.SHUTTING_DOWN,
                message="the listener stopped and aborted the run",
            )
        else:
            result = run.exec_task.result()
        with contextlib.suppress(Exception):
            await batcher.flush()
        await self._conclude(run, result)

    async def _conclude(self, run: _Run, result: ExecResult) -> None:
        """Wait for the verdict where one is due, then send the final status."""
        req = run.request
        if result.ok and result.data.get("awaiting_confirm"):
            self._journal(run, {"phase": "awaiting", **_resumable(result.data)})
            result = await self._await_verdict(run, result)
        extra: dict[str, Any] = {"action": req.action}
        extra.update(result.data)
        extra.setdefault("revision", req.revision)
        extra["duration"] = round(time.monotonic() - run.started, 3)
        final = self._response(
            "completed" if result.ok else "failed",
            error=None if result.ok else (result.error or ErrorCode.EXEC_FAILED),
            message=result.message,
            req_id=req.id,
            **extra,
        )
        if req.id is not None:
            self._finished[req.id] = final
            while len(self._finished) > FINISHED_KEPT:
                self._finished.popitem(last=False)
        self._run = None
        self._journal(run, None)
        log.info(
            "%s: %s %s: %s %s",
            self.config.hostname,
            req.action,
            req.revision,
            final.status,
            result.message,
        )
        await self._send(run.replies, final)

    async def _await_verdict(self, run: _Run, armed: ExecResult) -> ExecResult:
        """Say the host waits for confirmation, then wait for the controller's verdict.

        The run keeps the lock meanwhile: no other deploy starts on a host
        whose new system is not yet kept. Without a verdict in time the
        watchdog rolls back; the listener then claims what is left and
        reports it.
        """
        req = run.request
        window = armed.data.get("confirm_timeout")
        window = float(window) if isinstance(window, int | float) else 0.0
        given = armed.data.get("request_id")
        if run.confirm_id is None and isinstance(given, str):
            run.confirm_id = given
        run.awaiting = True
        await self._send(
            run.replies,
            self._response(
                AWAITING_CONFIRMATION, message=armed.message, req_id=req.id, **armed.data
            ),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.settled.wait(), window + VERDICT_GRACE)
        data = {k: v for k, v in armed.data.items() if k != "awaiting_confirm"}
        verdict = run.verdict
        if verdict is None and not run.settling and run.ctx is not None and run.confirm_id:
            run.settling = True
            late = await harness.settle(self.executor, "reject", run.confirm_id, run.ctx)
            run.settled.set()
            return ExecResult(
                ok=False,
                error=ErrorCode.CONFIRM_TIMEOUT,
                message=f"no confirmation within {window:g}s; {late.message}",
                data={**data, **late.data, "confirmed": False},
            )
        if verdict is None and run.settling:  # a verdict is being carried out: it ends the run
            await run.settled.wait()
            verdict = run.verdict
        if verdict is None:
            return ExecResult(
                ok=False,
                error=ErrorCode.CONFIRM_TIMEOUT,
                message=f"no confirmation within {window:g}s; the host's watchdog rolls back",
                data={**data, "confirmed": False},
            )
        if verdict.ok:
            message = f"{armed.message.split('; awaiting')[0]}; confirmed"
            return ExecResult(True, None, message, {**data, **verdict.data, "confirmed": True})
        return ExecResult(
            False,
            verdict.error or ErrorCode.ROLLED_BACK,
            verdict.message,
            {**data, **verdict.data, "confirmed": False},
        )

    # -- confirmation, discovery, facts -----------------------------------------------

    async def _reply_json(self, msg: Msg, doc: dict[str, Any]) -> None:
        if msg.reply:
            await self._publish(msg.reply, self._encode(doc))

    async def _on_confirm(self, msg: Msg) -> None:
        """``{"id": …}`` confirms the activation with that id; ``"confirm": false``
        rejects it (roll back now). Only an activation that waits for its verdict
        takes one: a confirmation that arrives early is refused, never kept."""
        try:
            doc = json.loads(msg.data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        req_id = doc.get("id") if isinstance(doc, dict) else None
        refuse = isinstance(doc, dict) and doc.get("confirm") is False
        valid = is_request_id(req_id)
        run = self._run
        answer: dict[str, Any] = {
            "hostname": self.config.hostname,
            "id": req_id if valid else None,
            "confirmed": False,
            "refused": False,
        }
        try:
            # keeping or rolling back a system is a deployer's word, like a deploy
            _check_target(doc, msg.subject, self._authenticate(doc))
        except signing.SignatureError as exc:
            answer.update(status="failed", error=exc.code.value, message=exc.message)
            await self._reply_json(msg, answer)
            return
        waiting = (
            valid
            and run is not None
            and run.confirm_id == req_id
            and run.awaiting
            and not run.settling
            and run.ctx is not None
        )
        if not waiting or run is None or run.ctx is None:
            answer.update(
                status="failed",
                error=ErrorCode.NOT_AWAITING.value,
                message="no activation with this id waits for confirmation",
            )
            await self._reply_json(msg, answer)
            return
        run.settling = True  # no await since the check: one verdict per run
        what: harness.Settlement = "reject" if refuse else "confirm"
        result = await harness.settle(self.executor, what, str(req_id), run.ctx)
        run.verdict = result
        run.settled.set()
        log.info("%s: run %s %s: %s", self.config.hostname, req_id, what, result.message)
        answer.update(result.data)
        answer.update(
            status="completed" if result.ok else "failed",
            error=None if result.error is None else result.error.value,
            message=result.message,
            confirmed=result.ok and not refuse,
            refused=refuse and bool(result.data.get("rolled_back", True)),
        )
        await self._reply_json(msg, answer)

    async def discovery_info(self) -> dict[str, Any]:
        try:
            current = await self.executor.current(self._context())
        except Exception as exc:  # discovery must answer regardless
            current = {"error": f"{type(exc).__name__}: {exc}"}
        run = self._run
        return {
            "hostname": self.config.hostname,
            "tier": self.config.tier,
            "roles": list(self.config.roles),
            "version": __version__,
            "protocol": 1,
            "executor": self.executor.name,
            "subjects": list(self.subjects.deploy),
            "generation": current.get("generation"),
            "revision": current.get("revision"),
            "store_path": current.get("store_path"),
            "busy": run is not None,
            "running": (
                {
                    "id": run.request.id,
                    "action": run.request.action,
                    "revision": run.request.revision,
                }
                if run is not None
                else None
            ),
            "stopping": self._stopping,
        }

    async def _on_discover(self, msg: Msg) -> None:
        """Answer on the NATS reply subject and on a ``reply_to`` in the body.

        homelab-deploy's controller names its reply subject in the body
        (``{"reply_to": "deploy.responses.<uuid>"}``), hlplay's in the message;
        each distinct, valid one gets the answer once.
        """
        try:
            replies = [msg.reply] if msg.reply else []
            body_reply = discovery_reply_to(msg.data)
            if body_reply is not None and body_reply not in replies:
                replies.append(body_reply)
            if not replies:
                return
            data = self._encode(await self.discovery_info())
            for subject in replies:
                await self._publish(subject, data)
        except Exception:
            log.exception("%s: discovery failed", self.config.hostname)

    async def _on_facts(self, msg: Msg) -> None:
        try:
            facts = await collect_facts(
                self._context(),
                self.executor,
                units_dir=self.config.units_dir,
                disk_paths=self.config.disk_paths,
            )
            facts["busy"] = self._run is not None
            # The executor the facts name and the protocol version tell the
            # controller it gets magic rollback, a health gate and a diff from
            # this host (an older listener says neither, and is treated as giving none).
            facts["protocol"] = PROTOCOL_VERSION
            await self._reply_json(msg, facts)
        except Exception:
            log.exception("%s: facts failed", self.config.hostname)


def _check_target(doc: Any, subject: str, signed: signing.SignedBy | None) -> None:
    """A signed message names the subject it was signed for (``to``), and came on it.

    The signature covers the message, not the subject it travels on: without
    this, whoever can publish (a hostile server, anyone on one without
    authorization) could hand a request signed for one host to every other
    host that trusts the same key.
    """
    if signed is None:
        return
    target = doc.get("to") if isinstance(doc, dict) else None
    if target != subject:
        raise signing.SignatureError(
            ErrorCode.BAD_SIGNATURE,
            f"signed for {target!r}, received on {subject!r}"
            if target is not None
            else "a signed request must name the subject it is for ('to')",
        )


def _resumable(data: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run needs of an activation waiting for its verdict."""
    keys = ("action", "path", "canary", "request_id", "confirm_timeout", "generation")
    return {k: data[k] for k in keys if k in data}


def read_nkey_file(path: str) -> str:
    """The seed in ``--nkey-file``; a :class:`ListenerError` saying what is wrong."""
    try:
        with open(path) as fh:
            seed = fh.read().strip()
    except OSError as exc:
        raise ListenerError(f"--nkey-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ListenerError(f"--nkey-file {path}: not an NKey user seed") from None
    if not seed.startswith("SU"):
        raise ListenerError(f"--nkey-file {path}: not an NKey user seed")
    return seed


def _signer_of(config: ListenerConfig) -> signing.Signer | None:
    """The key this listener signs with: ``--signing-seed``, else its NATS seed."""
    seed = config.signing_seed or config.nkey_seed
    if seed is None and config.nkey_file:
        seed = read_nkey_file(config.nkey_file)
    if not seed:
        return None
    try:
        return signing.Signer(seed)
    except (ValueError, TypeError) as exc:
        raise ListenerError(f"the signing seed is not an NKey seed: {exc}") from None


def discovery_reply_to(data: bytes) -> str | None:
    """The ``reply_to`` of a discovery request's body, when it is a sound reply subject."""
    if not data or len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    reply_to = doc.get("reply_to") if isinstance(doc, dict) else None
    return reply_to if is_reply_subject(reply_to) else None


async def run_listener(config: ListenerConfig) -> None:
    await Listener(config).serve()


# -- many listeners in one process (benchmarks only) -----------------------------------


async def run_many(configs: Sequence[ListenerConfig], *, concurrency: int = 50) -> None:
    """Run many listeners in this process until SIGTERM/SIGINT or stdin closes.

    Prints ``ready <n>`` on stdout once every listener is subscribed.
    """
    listeners = [Listener(c) for c in configs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gate = asyncio.Semaphore(concurrency)

    async def start(listener: Listener) -> None:
        async with gate:
            await listener.start()

    await asyncio.gather(*(start(x) for x in listeners))
    print(f"ready {len(listeners)}", flush=True)

    async def stdin_closed() -> None:
        await asyncio.to_thread(sys.stdin.read)
        stop.set()

    watcher = asyncio.create_task(stdin_closed())
    await stop.wait()
    watcher.cancel()
    await asyncio.gather(*(x.shutdown(grace=5) for x in listeners), return_exceptions=True)


def run_many_main(argv: Sequence[str] | None = None) -> None:
    """``python -c 'from hlplay.agent.listener import run_many_main; run_many_main()' SPEC``.

    SPEC is a JSON file: ``{"urls": [...], "tier": "t", "executor": "noop",
    "progress_interval": 0.5, "trusted_keys": ["U…"], "accept_unsigned": false,
    "sign": true, "hosts": [{"name": "h1", "seed": "SU…", "roles": [...]}]}``.
    ``sign: false`` makes the listeners answer unsigned (a benchmark's baseline).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    with open(args[0]) as fh:
        spec = json.load(fh)
    logging.basicConfig(level=spec.get("log_level", "WARNING"), format="%(levelname)s %(message)s")
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    base = ListenerConfig(
        hostname="x",
        tier=spec["tier"],
        nats_urls=tuple(spec["urls"]),
        executor=spec.get("executor", "noop"),
        progress_interval=float(spec.get("progress_interval", 0.5)),
        trusted_keys=(
            frozenset(spec["trusted_keys"]) if spec.get("trusted_keys") is not None else None
        ),
        accept_unsigned=bool(spec.get("accept_unsigned", False)),
        sign_answers=bool(spec.get("sign", True)),
    )
    configs = [
        replace(base, hostname=h["name"], nkey_seed=h.get("seed"), roles=tuple(h.get("roles", ())))
        for h in spec["hosts"]
    ]
    asyncio.run(run_many(configs))
