"""The NATS transport: the controller side of the listener protocol.

A deploy compiles the selected hosts into the fewest subjects that reach
exactly them (``deploy.<tier>.all``, ``deploy.<tier>.role.<role>``,
``deploy.<tier>.<host>``), publishes ONE request per subject — all with the
same request id, each with its own reply inbox — and gathers the stream of
responses per host until every expected host has a final status or the
deadline passes.

* A host that never answers is *unreachable*; one that answered but sent no
  final status by the deadline has *failed* (``no_final_status``). A liveness
  probe on the facts subject declares a host whose listener is gone long
  before the deadline: one silent ``hlplay.nats.liveness`` seconds after the
  request, and one gone quiet mid-run that leaves two probes in a row
  unanswered.
* Replies from hosts nobody expected are logged and kept in :attr:`stray`,
  never counted; replies carrying another request id are ignored.
* A reply is believed only when it is signed by the key of the host it claims
  to be (``hlplay_listener_key``, ``nkey``, or ``<hlplay.nats.keys>/<host>.pub``,
  by default beside ``credentials``) and, for a deploy or a confirmation,
  carries the request's id. Any other reply — unsigned, badly signed, signed
  by another key, stale, or for a host whose key is unknown — is logged and
  kept in :attr:`forged`, and never counted: the host's own answer, or the
  deadline, decides. Facts and discovery answers are checked the same way.
  Hosts marked ``protocol: homelab-deploy`` sign nothing and are believed as
  they are.
* A permission refusal by the server (``permissions violation for publish to
  "…"``) fails every host of that subject at once, saying so.
* When the connection to the server comes back after an outage, the request
  is published again, to the per-host subject (``deploy.<tier>.<host>``) of
  each host still owing a final status — never to a tier or role subject,
  where a listener that does not know ``id`` (homelab-deploy's) might run it
  twice. hlplay listeners recognise the request id and answer with the run's
  state or its stored final status; hosts marked ``protocol: homelab-deploy``
  are not asked again at all.
* Reply subjects are ``<reply_prefix>.<uuid>[.<index>]`` with the inventory's
  ``hlplay.nats.reply_prefix`` (``deploy.responses`` for homelab-deploy's
  server permissions), or the client's ``_INBOX`` inbox by default.
* Hosts marked ``protocol: homelab-deploy`` get only the seed's actions
  (switch, boot, test, dry-activate) and a request without hlplay-only fields;
  any other action fails for them at once (``not_supported``), unpublished.

Arbitrary commands are not available over NATS: :meth:`run` raises
:class:`NotSupported`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlplay.auth.trust import TrustFileError, host_public_keys
from hlplay.inventory.model import Host, Inventory, NatsSettings
from hlplay.inventory.targets import NatsTarget
from hlplay.protocol import signing
from hlplay.protocol.messages import (
    AWAITING_CONFIRMATION,
    BASE_ACTIONS,
    DeployRequest,
    DeployResponse,
    ErrorCode,
    ProtocolError,
    new_request_id,
)
from hlplay.protocol.subjects import expand, host_subjects
from hlplay.transports.base import (
    AWAITING_CONFIRM,
    AwaitingCallback,
    CommandResult,
    DeployOutcome,
    NotSupported,
    ProgressCallback,
    Transport,
    Unreachable,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

log = logging.getLogger("hlplay.transport.nats")

NOT_SUPPORTED_RUN = (
    "arbitrary commands are not available over NATS; "
    "listener hosts accept deploy actions and fact queries only"
)
PERMISSION_RE = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')
REPUBLISH_DELAYS = (0.0, 1.0)  # after a reconnect

#: Seconds a host may stay silent after a request before its facts subject is
#: asked whether its listener is there at all: ``hlplay.nats.liveness``'s default.
LIVENESS_GRACE = NatsSettings().liveness
#: A host that has started is asked only after this many graces of silence: a
#: build can be quiet for a while, and a listener restarted by its own deploy
#: needs time to come back and resume the run.
LIVENESS_SILENCE_GRACES = 5
#: How long a probe waits for the facts answer.
LIVENESS_PROBE_TIMEOUT = 2.0
#: After one unanswered probe of a host that has started, the next comes this
#: soon: only two in a row declare it gone.
LIVENESS_RETRY = 1.0
LIVENESS_TICK = 0.25


#: The code of a reply refused because no key is known for the host it claims to be.
NO_HOST_KEY = "no_host_key"
#: The code of a reply signed by its host but for another request: an old answer played again.
NOT_THIS_REQUEST = "not_this_request"
UNREADABLE = "unreadable"
#: Entries :attr:`NatsTransport.forged` keeps at most: a flood must not grow it without bound.
FORGED_KEEP = 1000

#: Why a reply is not believed: (code, reason).
Refusal = tuple[str, str]
#: ``check(host, doc, request_id)``: None when ``doc`` is ``host``'s own answer.
ReplyCheck = Callable[[str, Any, str | None], Refusal | None]


@dataclass(frozen=True)
class _HostKey:
    """What a host's answers must be signed with."""

    allowed: frozenset[str] = frozenset()
    exempt: bool = False  # a homelab-deploy listener, which signs nothing
    problem: str = ""  # why no key is known


class _Refused(Exception):
    """A reply :meth:`NatsTransport._request` drops; ``final``: none can ever be believed."""

    def __init__(self, reason: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def record_forged(
    forged: list[dict[str, Any]],
    *,
    host: str,
    subject: str,
    doc: Any,
    refusal: Refusal,
    request_id: str | None,
) -> None:
    """Keep a reply that was not believed, with who it claimed to be and why."""
    if len(forged) >= FORGED_KEEP:
        return
    body = doc if isinstance(doc, Mapping) else {}
    envelope = body.get(signing.SIG_FIELD)
    key = envelope.get("key") if isinstance(envelope, Mapping) else None
    status = body.get("status")
    forged.append(
        {
            "host": host,
            "subject": subject,
            "status": status if isinstance(status, str) else None,
            "code": refusal[0],
            "reason": refusal[1],
            "request_id": request_id,
            "key": key if isinstance(key, str) else None,
        }
    )


#: How long a listener may take to answer a confirmation (it renames a file)
#: and a rejection (it rolls back: the old system is activated again).
CONFIRM_REPLY_TIMEOUT = 10.0
REJECT_REPLY_TIMEOUT = 120.0


def verdict_outcome(host: str, data: bytes | Mapping[str, Any], confirm: bool) -> DeployOutcome:
    """A listener's answer to a confirm or reject (as sent, or parsed), as the host's outcome."""
    doc = dict(data) if isinstance(data, Mapping) else _loads(data)
    if not isinstance(doc, dict):
        return DeployOutcome(host, "failed", ErrorCode.INTERNAL.value, "unreadable answer")
    status = doc.get("status")
    if status not in ("completed", "failed"):
        # a listener that answers only yes or no
        key = "confirmed" if confirm else "refused"
        took = doc.get(key) is True
        status = "completed" if took and confirm else "failed"
        if not confirm and took:
            doc.setdefault("error", ErrorCode.ROLLED_BACK.value)
    error = doc.get("error")
    message = doc.get("message")
    data_out = {
        k: v
        for k, v in doc.items()
        if k not in ("status", "error", "message", "hostname", "id", signing.SIG_FIELD)
    }
    return DeployOutcome(
        host,
        str(status),
        str(error) if error else None,
        str(message) if message else "",
        data=data_out,
    )


class NatsPermissionError(Unreachable):
    """The NATS server refused to let these credentials publish or subscribe."""


class UnbelievedReply(Unreachable):
    """Replies came, but none was signed by the host that was asked."""


def permission_message(kind: str, subject: str) -> str:
    if kind == "publish":
        return f"permission denied: these credentials may not publish to {subject}"
    return (
        f"permission denied: these credentials may not subscribe to {subject}, "
        "so no reply can be received"
    )


@dataclass
class _Target:
    index: int
    subject: str
    hosts: frozenset[str]
    reply: str = ""
    answered: bool = False
    tier: str = ""


@dataclass
class _HostState:
    status: str | None = None
    final: DeployResponse | None = None
    outcome: DeployOutcome | None = None
    progress: list[str] = field(default_factory=list)
    last_message: str = ""
    #: loop time of its last believed reply
    heard: float | None = None
    #: loop time of its last answer to a liveness probe
    alive: float | None = None
    probed: float | None = None
    misses: int = 0  # liveness probes unanswered in a row


class _Gather:
    """Replies of one deploy request, per host."""

    def __init__(
        self,
        request_id: str,
        targets: list[_Target],
        progress: ProgressCallback | None,
        stray: list[dict[str, Any]],
        awaiting: AwaitingCallback | None = None,
        *,
        check: ReplyCheck | None = None,
        forged: list[dict[str, Any]] | None = None,
    ) -> None:
        self.request_id = request_id
        #: None believes every reply (a gathering outside a transport)
        self.check = check
        self.forged: list[dict[str, Any]] = [] if forged is None else forged
        #: host -> (replies claiming to be it that were refused, the last reason)
        self.refused: dict[str, tuple[int, str]] = {}
        self.targets = targets
        self.progress_cb = progress
        self.awaiting_cb = awaiting
        self.callbacks: list[asyncio.Future[Any]] = []
        self.stray = stray
        self.expected: dict[str, _Target] = {}
        for target in targets:
            for host in target.hosts:
                self.expected.setdefault(host, target)
        self.state = {host: _HostState() for host in self.expected}
        self.done = asyncio.Event()
        self.republished = False
        self.payloads: dict[int, bytes] = {}
        #: Hosts whose listeners do not know ``id`` (homelab-deploy): never asked twice.
        self.plain: frozenset[str] = frozenset()
        self._check_done()

    def pending_targets(self) -> list[_Target]:
        return [
            t
            for t in self.targets
            if any(self.state[h].outcome is None for h in t.hosts if h in self.state)
        ]

    def pending_hosts(self) -> list[tuple[str, _Target]]:
        """Hosts still owing a final status that may be asked again, with their target."""
        return [
            (host, self.expected[host])
            for host, st in self.state.items()
            if st.outcome is None and host not in self.plain
        ]

    def _check_done(self) -> None:
        if all(s.outcome is not None for s in self.state.values()):
            self.done.set()

    def settle(self, host: str, outcome: DeployOutcome) -> None:
        st = self.state[host]
        if st.outcome is None:
            outcome.progress = st.progress
            st.outcome = outcome
            self._check_done()

    def end(self, host: str, status: str, code: ErrorCode, message: str) -> None:
        """Settle ``host`` with an outcome decided here, not by its listener."""
        subject = self.expected[host].subject
        self.settle(
            host,
            DeployOutcome(
                host=host,
                status=status,
                error=code.value,
                message=message,
                data={"request_id": self.request_id, "subject": subject},
            ),
        )

    def deny(self, kind: str, subject: str) -> None:
        """The server refused ``subject``: settle the hosts it concerns at once."""
        message = permission_message(kind, subject)
        for target in self.targets:
            concerned = kind == "subscription" or target.subject == subject
            if not concerned:
                continue
            for host in target.hosts:
                if host in self.state:
                    self.end(host, "failed", ErrorCode.PERMISSION_DENIED, message)

    async def on_msg(self, msg: Msg) -> None:
        try:
            await self._on_msg(msg)
        except Exception:  # a bad reply must not end the gathering
            log.exception("bad reply on %s", msg.subject)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            target = self.targets[int(msg.subject.rsplit(".", 1)[1])]
        except (ValueError, IndexError):
            return
        headers = msg.headers or {}
        if headers.get("Status") == "503":
            # Nobody subscribes to the subject: no listener can answer.
            if not self.republished and not target.answered:
                for host in target.hosts:
                    if host in self.state and self.state[host].status is None:
                        self.end(
                            host,
                            "unreachable",
                            ErrorCode.UNREACHABLE,
                            f"no listener is subscribed to {target.subject}",
                        )
            return
        try:
            resp = DeployResponse.parse(msg.data)
        except ProtocolError as exc:
            log.warning("unreadable reply on %s: %s", target.subject, exc.message)
            return
        if resp.id is not None and resp.id != self.request_id:
            log.debug("ignoring a reply from %s to an older request %s", resp.hostname, resp.id)
            return
        host = resp.hostname
        st = self.state.get(host)
        if st is not None and self.check is not None:
            doc = json.loads(msg.data)
            refusal = self.check(host, doc, self.request_id)
            if refusal is not None:
                self._refuse(host, target, doc, refusal)
                return
        target.answered = True
        if st is None:
            self.stray.append(
                {
                    "host": host,
                    "subject": target.subject,
                    "status": resp.status,
                    "request_id": self.request_id,
                    "message": resp.message,
                }
            )
            if resp.status in ("accepted", "rejected"):
                log.warning(
                    "host %s answered on %s but was not selected; its replies are not counted",
                    host,
                    target.subject,
                )
            return
        if st.outcome is not None:
            return
        st.heard = asyncio.get_running_loop().time()
        st.misses = 0
        if (
            resp.status == "rejected"
            and resp.error == ErrorCode.ALREADY_RUNNING.value
            and st.status in ("accepted", "started")
        ):
            # Our own request, published again after a reconnect, met the run
            # it had started: not a refusal.
            return
        st.status = resp.status
        if resp.message:
            st.last_message = resp.message
        lines = resp.progress_lines
        if lines:
            st.progress.extend(lines)
            if self.progress_cb is not None:
                for line in lines:
                    result = self.progress_cb(host, line)
                    if inspect.isawaitable(result):
                        await result
        if resp.status == AWAITING_CONFIRMATION:
            # The host activated and armed its watchdog: the deploy is over for
            # the gathering; its end is the controller's confirm or reject.
            data = {k: v for k, v in resp.extra.items() if k not in ("progress", signing.SIG_FIELD)}
            data["request_id"] = self.request_id
            data["subject"] = target.subject
            data["awaiting_confirm"] = True
            outcome = DeployOutcome(
                host=host, status=AWAITING_CONFIRM, message=resp.message, data=data
            )
            if self.awaiting_cb is not None:
                maybe = self.awaiting_cb(outcome)
                if inspect.isawaitable(maybe):
                    # run beside the gathering; the deploy returns once it is done
                    self.callbacks.append(asyncio.ensure_future(maybe))
            self.settle(host, outcome)
            return
        if resp.final:
            st.final = resp
            data = {k: v for k, v in resp.extra.items() if k not in ("progress", signing.SIG_FIELD)}
            data["request_id"] = self.request_id
            data["subject"] = target.subject
            self.settle(
                host,
                DeployOutcome(
                    host=host,
                    status=resp.status,
                    error=resp.error,
                    message=resp.message,
                    data=data,
                ),
            )

    def _refuse(self, host: str, target: _Target, doc: Any, refusal: Refusal) -> None:
        """A reply claiming to be ``host`` that is not believed: kept aside, never counted."""
        code, reason = refusal
        count = self.refused.get(host, (0, ""))[0] + 1
        self.refused[host] = (count, reason)
        record_forged(
            self.forged,
            host=host,
            subject=target.subject,
            doc=doc,
            refusal=refusal,
            request_id=self.request_id,
        )
        # One warning per host and request: a flood must not flood the log too.
        (log.warning if count == 1 else log.debug)(
            "a reply claiming to be %s on %s is not believed and not counted (%s): %s",
            host,
            target.subject,
            code,
            reason,
        )
        if code == NO_HOST_KEY:
            # Without a key no answer from this host can ever be believed:
            # waiting for the deadline would change nothing.
            self.end(
                host,
                "failed",
                ErrorCode.NO_FINAL_STATUS,
                f"{reason}; its replies on {target.subject} cannot be believed, "
                "so whether the request ran there is unknown",
            )

    def expire(self, timeout: float) -> None:
        for host, st in self.state.items():
            if st.outcome is not None:
                continue
            target = self.expected[host]
            count, reason = self.refused.get(host, (0, ""))
            refused = (
                f"{count} {'reply' if count == 1 else 'replies'} claiming to be {host} "
                f"not believed: {reason}"
                if count
                else ""
            )
            if st.status is None:
                message = f"no reply from the listener on {target.subject} within {timeout:g}s"
                if st.alive is not None:
                    message += " (it answers on its facts subject, but not to the request)"
                if refused:
                    message = (
                        f"no reply that could be believed from the listener on {target.subject} "
                        f"within {timeout:g}s ({refused})"
                    )
                self.end(host, "unreachable", ErrorCode.UNREACHABLE, message)
            else:
                self.end(
                    host,
                    "failed",
                    ErrorCode.NO_FINAL_STATUS,
                    f"no final status within {timeout:g}s (last: {st.status}"
                    + (f", {st.last_message}" if st.last_message else "")
                    + ")"
                    + (f"; {refused}" if refused else ""),
                )


class NatsTransport(Transport):
    """Reaches listener hosts through NATS, with the inventory's ``hlplay.nats`` settings."""

    name = "nats"
    #: Sign requests and check answers. Off only for a benchmark's unsigned
    #: baseline (bench/fanout.py); nothing a user sets reaches it.
    signatures: bool = True

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.settings = inventory.settings.nats
        self.templates = self.settings.subjects
        self.nc: Client | None = None
        self._lock = asyncio.Lock()
        self._gathers: set[_Gather] = set()
        self._watchers: set[Any] = set()  # callbacks for permission refusals
        self._auth_error: str | None = None
        self._auth_event = asyncio.Event()
        self._last_error: str | None = None
        #: Bumped at every disconnect and reconnect: a probe that spans one proves nothing.
        self._link_epoch = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Replies from hosts that were not expected (host, subject, status, request id).
        self.stray: list[dict[str, Any]] = []
        #: Replies not believed: not signed by the key of the host they claim to be
        #: (host, subject, status, code, reason, request id, signing key).
        self.forged: list[dict[str, Any]] = []
        self._host_keys: dict[str, _HostKey] = {}  # for the transport's life
        self._hosts: dict[str, Host] = {}  # hosts asked, which may not be the inventory's
        #: Subjects published to by the last deploy (one per target).
        self.last_subjects: list[str] = []
        self._signer: signing.Signer | None = None

    # -- connection ---------------------------------------------------------------

    def _new_inbox(self, nc: Client) -> str:
        """A fresh reply subject: ``<reply_prefix>.<uuid>``, or the client's inbox."""
        prefix = self.settings.reply_prefix
        if prefix:
            return f"{prefix}.{uuid.uuid4().hex}"
        return nc.new_inbox()

    def _find(self, path: str, *, directory: bool = False) -> Path | None:
        """``path`` as it exists: as given, else relative to an inventory source."""
        candidates = [Path(path).expanduser()]
        if not candidates[0].is_absolute():
            for src in self.inventory.sources:
                base = Path(src)
                candidates.append((base if base.is_dir() else base.parent) / path)
        for cand in candidates:
            if cand.is_dir() if directory else cand.is_file():
                return cand
        return None

    def _seed(self) -> str | None:
        path = self.settings.credentials
        if not path:
            return None
        cand = self._find(path)
        if cand is None:
            raise Unreachable(f"NATS credentials file {path} not found")
        from hlplay.auth.keys import KeyFileError, read_seed

        try:
            return read_seed(cand)
        except KeyFileError as exc:
            raise Unreachable(f"NATS credentials: {exc}") from None

    def keys_dir(self) -> Path | None:
        """Where the listeners' public keys are: ``hlplay.nats.keys``, else beside the
        credentials (where ``hlplay nats keys`` and the lab put every key)."""
        if self.settings.keys:
            return self._find(self.settings.keys, directory=True) or Path(self.settings.keys)
        if self.settings.credentials:
            seed = self._find(self.settings.credentials)
            return None if seed is None else seed.parent
        return None

    def _host_key(self, name: str) -> _HostKey:
        known = self._host_keys.get(name)
        if known is not None:
            return known
        entry = self._hosts.get(name)
        if entry is None:
            entry = self.inventory.hosts.get(name)
        if entry is None:
            known = _HostKey(problem=f"host {name} is not in the inventory: no key is known for it")
        elif entry.homelab_deploy:
            known = _HostKey(exempt=True)
        else:
            keys_dir = self.keys_dir()
            # With the retired keys still in their grace: a listener keeps
            # signing with its old seed until it is given the new one.
            allowed: frozenset[str] = frozenset()
            try:
                allowed = host_public_keys(self.inventory, entry, keys_dir=keys_dir)
            except TrustFileError as exc:
                problem = str(exc)
            else:
                where = (
                    f"the keys directory ({keys_dir})"
                    if keys_dir is not None
                    else "the directory hlplay.nats.keys names"
                )
                problem = (
                    f"no public key for host {name}: set hlplay_listener_key, "
                    f"or put {name}.pub in {where}"
                )
            known = _HostKey(allowed=allowed, problem=problem)
        self._host_keys[name] = known
        return known

    def check_reply(self, host: str, doc: Any, request_id: str | None = None) -> Refusal | None:
        """None when ``doc`` is ``host``'s own answer (to ``request_id``, when given);
        otherwise why it must not be believed."""
        if not self.signatures:
            return None
        known = self._host_key(host)
        if known.exempt:
            return None
        if not known.allowed:
            return (NO_HOST_KEY, known.problem)
        if not isinstance(doc, Mapping):
            return (UNREADABLE, "the reply is not a JSON object")
        try:
            signing.verify(doc, known.allowed, window=signing.DEFAULT_WINDOW)
        except signing.SignatureError as exc:
            if exc.code == ErrorCode.KEY_NOT_ALLOWED:
                return (exc.code.value, self._wrong_key(host, doc))
            return (exc.code.value, exc.message)
        if request_id is not None and doc.get("id") != request_id:
            # The signature covers the id: without this check, any answer the
            # host ever signed could be played into a later request's inbox.
            return (
                NOT_THIS_REQUEST,
                f"signed by {host}, but not for request {request_id}: an old answer played again",
            )
        return None

    def _wrong_key(self, host: str, doc: Mapping[str, Any]) -> str:
        key = doc[signing.SIG_FIELD]["key"]  # verify() checked the envelope's shape
        owner = next((n for n, k in self._host_keys.items() if key in k.allowed), None)
        by = f"{owner}'s key {key}" if owner else f"key {key}"
        return f"signed with {by}, not with {host}'s"

    def _forged_reply(
        self, host: str, subject: str, doc: Any, refusal: Refusal, request_id: str | None
    ) -> None:
        record_forged(
            self.forged, host=host, subject=subject, doc=doc, refusal=refusal, request_id=request_id
        )
        log.warning(
            "a reply claiming to be %s on %s is not believed (%s): %s",
            host,
            subject,
            refusal[0],
            refusal[1],
        )

    def _signed(self, payload: bytes, to: str) -> bytes:
        """A request as sent: signed with the controller's NKey, which listeners check
        against the keys their tier trusts, for the subject ``to`` it goes to (a
        listener refuses it on any other). Without credentials, unsigned."""
        if not self.signatures:
            return payload
        if self._signer is None:
            seed = self._seed()
            if seed is None:
                return payload
            self._signer = signing.Signer(seed)
        doc = {**json.loads(payload), "to": to}
        return json.dumps(signing.sign(doc, self._signer)).encode()

    async def _error_cb(self, exc: Exception) -> None:
        text = str(exc)
        if "Authorization Violation" in text or type(exc).__name__ == "AuthorizationError":
            self._auth_error = "the server refused these credentials (authorization violation)"
            self._auth_event.set()
            return
        match = PERMISSION_RE.search(text)
        if match:
            kind, subject = match.group(1), match.group(2)
            log.warning("%s", permission_message(kind, subject))
            for gather in list(self._gathers):
                gather.deny(kind, subject)
            for watcher in list(self._watchers):
                watcher(kind, subject)
            return
        self._last_error = text or type(exc).__name__
        log.debug("NATS: %s", self._last_error)

    async def _reconnected_cb(self) -> None:
        self._link_epoch += 1
        log.warning("reconnected to NATS; asking for statuses that may have been lost")
        for gather in list(self._gathers):
            task = asyncio.create_task(self._republish(gather))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _disconnected_cb(self) -> None:
        self._link_epoch += 1
        if self._gathers:
            log.warning("disconnected from NATS during a deploy; reconnecting")

    async def _republish(self, gather: _Gather) -> None:
        gather.republished = True
        for delay in REPUBLISH_DELAYS:
            await asyncio.sleep(delay)
            nc = self.nc
            if gather.done.is_set() or nc is None or not nc.is_connected:
                return
            # Per-host subjects only: a tier or role subject may reach listeners
            # that do not know ``id`` and would run the request a second time.
            for host, target in gather.pending_hosts():
                subject = host_subjects(self.templates, hostname=host, tier=target.tier)["deploy"]
                with contextlib.suppress(Exception):
                    await nc.publish(subject, gather.payloads[target.index], reply=target.reply)
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)

    async def connection(self) -> Client:
        """The NATS connection, opened on first use; raises :class:`Unreachable`."""
        async with self._lock:
            if self.nc is not None and not self.nc.is_closed:
                return self.nc
            from nats.aio.client import Client as NATS

            kwargs: dict[str, Any] = {}
            seed = self._seed()
            if seed:
                kwargs["nkeys_seed_str"] = seed
            nc = NATS()
            self._auth_error = None
            self._auth_event = asyncio.Event()
            urls = list(self.settings.urls)
            connecting = asyncio.create_task(
                nc.connect(
                    servers=urls,
                    name="hlplay",
                    error_cb=self._error_cb,
                    reconnected_cb=self._reconnected_cb,
                    disconnected_cb=self._disconnected_cb,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,  # type: ignore[arg-type]
                    connect_timeout=2,
                    **kwargs,
                )
            )
            auth = asyncio.create_task(self._auth_event.wait())
            try:
                await asyncio.wait(
                    {connecting, auth},
                    timeout=self.settings.connect_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                auth.cancel()
            if not connecting.done() or connecting.exception() is not None:
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                with contextlib.suppress(Exception):
                    await nc.close()
                where = ", ".join(urls)
                if self._auth_error:
                    raise Unreachable(f"NATS at {where}: {self._auth_error}")
                reason = f": {self._last_error}" if self._last_error else ""
                raise Unreachable(
                    f"cannot connect to NATS at {where} within "
                    f"{self.settings.connect_timeout:g}s{reason}"
                )
            self.nc = nc
            return nc

    # -- targets ------------------------------------------------------------------

    def plan(self, hosts: Sequence[Host]) -> tuple[list[NatsTarget], list[Host]]:
        """NATS targets for the listener hosts, and the hosts without a listener."""
        listener_hosts = [h for h in hosts if h.has_listener]
        direct = [h for h in hosts if not h.has_listener]
        targets: list[NatsTarget] = []
        try:
            from hlplay.inventory.targets import compile_targets

            known = [h for h in listener_hosts if self.inventory.hosts.get(h.name) == h]
            plan = compile_targets(self.inventory, known)
            covered: set[str] = set()
            for t in plan.nats:
                targets.append(t)
                covered |= t.hosts
            rest = [h for h in listener_hosts if h.name not in covered]
        except NotImplementedError:
            rest = listener_hosts
        for host in rest:
            subject = host_subjects(self.templates, hostname=host.name, tier=host.tier)["deploy"]
            targets.append(NatsTarget(subject, host.tier, "host", frozenset({host.name})))
        return targets, direct

    # -- the Transport interface ----------------------------------------------------

    async def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        become: bool = False,
    ) -> CommandResult:
        raise NotSupported(NOT_SUPPORTED_RUN)

    async def deploy_request(
        self,
        hosts: Sequence[Host],
        request: DeployRequest,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        awaiting: AwaitingCallback | None = None,
    ) -> dict[str, DeployOutcome]:
        """Publish ``request`` to the compiled targets of ``hosts``; one
        :class:`DeployOutcome` per host."""
        timeout = self.settings.timeout if timeout is None else timeout
        request_id = request.id or new_request_id()
        self._remember(hosts)
        base = dataclasses.replace(request, id=request_id, reply_to="")
        outcomes: dict[str, DeployOutcome] = {}
        action = str(base.action)
        plain = [h for h in hosts if h.has_listener and h.homelab_deploy]
        refused = [h for h in plain if action not in BASE_ACTIONS]
        for h in refused:
            outcomes[h.name] = DeployOutcome(
                host=h.name,
                status="failed",
                error=ErrorCode.NOT_SUPPORTED.value,
                message=f"host {h.name} speaks the homelab-deploy protocol, which has no "
                f"'{action}' action (only {', '.join(BASE_ACTIONS)})",
                data={"request_id": request_id, "protocol": h.protocol},
            )
        plain_names = {h.name for h in plain}
        refused_names = {h.name for h in refused}
        # homelab-deploy hosts get subjects of their own (reaching exactly
        # them), so that hlplay hosts keep the request's hlplay fields.
        targets, direct = self.plan([h for h in hosts if h.name not in plain_names])
        plain_ok = [h for h in plain if h.name not in refused_names]
        if plain_ok:
            plain_targets, _ = self.plan(plain_ok)
            targets += plain_targets
        for h in direct:
            outcomes[h.name] = DeployOutcome(
                host=h.name,
                status="failed",
                error=ErrorCode.NOT_SUPPORTED.value,
                message=f"host {h.name} has no listener (transport {h.transport}); "
                "the NATS transport cannot reach it",
            )
        outcomes.update(
            await self.deploy_targets(
                targets,
                base,
                timeout=timeout,
                progress=progress,
                awaiting=awaiting,
                plain_hosts=frozenset(plain_names),
            )
        )
        return {h.name: outcomes[h.name] for h in hosts if h.name in outcomes}

    def _remember(self, hosts: Sequence[Host]) -> None:
        # Their answers are checked against their own settings (their keys), and a
        # caller may hand over hosts the inventory does not hold.
        for h in hosts:
            self._hosts.setdefault(h.name, h)

    async def deploy_targets(
        self,
        nats_targets: Sequence[NatsTarget],
        request: DeployRequest,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        awaiting: AwaitingCallback | None = None,
        plain_hosts: Collection[str] = (),
    ) -> dict[str, DeployOutcome]:
        """Publish ``request`` once to each target's subject; gather per host.

        A target whose hosts are all in ``plain_hosts`` (homelab-deploy
        listeners) gets homelab-deploy's request, ``action``, ``revision`` and
        ``reply_to`` only; those hosts are never sent the request again after a
        reconnect.
        """
        timeout = self.settings.timeout if timeout is None else timeout
        request_id = request.id or new_request_id()
        plain = frozenset(plain_hosts)
        targets = [
            _Target(i, t.subject, frozenset(t.hosts), tier=t.tier)
            for i, t in enumerate(nats_targets)
        ]
        outcomes: dict[str, DeployOutcome] = {}
        if not targets:
            return outcomes
        try:
            nc = await self.connection()
        except Unreachable as exc:
            for t in targets:
                for name in t.hosts:
                    outcomes[name] = DeployOutcome(
                        host=name,
                        status="unreachable",
                        error=ErrorCode.UNREACHABLE.value,
                        message=str(exc),
                        data={"request_id": request_id},
                    )
            return outcomes
        gather = _Gather(
            request_id,
            targets,
            progress,
            self.stray,
            awaiting,
            check=self.check_reply,
            forged=self.forged,
        )
        gather.plain = plain
        inbox = self._new_inbox(nc)
        self._gathers.add(gather)
        sub = await nc.subscribe(inbox + ".*", cb=gather.on_msg)
        self.last_subjects = [t.subject for t in targets]
        try:
            for target in targets:
                target.reply = f"{inbox}.{target.index}"
                bare = bool(target.hosts) and target.hosts <= plain
                payload = DeployRequest(
                    action=request.action,
                    revision=request.revision,
                    reply_to=target.reply,
                    id=None if bare else request_id,
                    options={} if bare else request.options,
                ).to_json()
                if not bare:
                    # homelab-deploy listeners get the seed's fields, exactly
                    payload = self._signed(payload, target.subject)
                gather.payloads[target.index] = payload
                log.debug(
                    "publishing %s %s to %s", request.action, request.revision, target.subject
                )
                await nc.publish(target.subject, payload, reply=target.reply)
            with contextlib.suppress(Exception):
                await nc.flush(timeout=5)
            watch = asyncio.create_task(self._watch_liveness(gather))
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gather.done.wait(), timeout)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await self._probe_silent(gather)
            gather.expire(timeout)
            if gather.callbacks:
                await asyncio.gather(*gather.callbacks, return_exceptions=True)
        finally:
            self._gathers.discard(gather)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for host, st in gather.state.items():
            assert st.outcome is not None
            outcomes[host] = st.outcome
        return outcomes

    def _probe_subject(self, gather: _Gather, name: str) -> tuple[Host, str] | None:
        """The host to ask and its facts subject, when a silent facts subject means
        its listener is gone; None for homelab-deploy's listeners, which may
        answer on no facts subject, and for hosts the inventory does not hold."""
        host = self._hosts.get(name) or self.inventory.hosts.get(name)
        if host is None or host.homelab_deploy or name in gather.plain:
            return None
        return host, host_subjects(self.templates, hostname=name, tier=host.tier)["facts"]

    async def _probe(self, host: Host, subject: str) -> bool | None:
        """Whether ``host``'s listener answers on its facts subject; None when the
        probe proves nothing (refused, unbelievable, or the link to the server
        broke meanwhile)."""
        epoch = self._link_epoch
        nc = self.nc
        if nc is None or not nc.is_connected:
            return None
        try:
            await self._request(
                subject,
                b"{}",
                timeout=LIVENESS_PROBE_TIMEOUT,
                accept=self._accept_from(host.name, subject),
            )
        except (NatsPermissionError, UnbelievedReply) as exc:
            log.debug("liveness of %s cannot be probed: %s", host.name, exc)
            return None
        except Unreachable:
            if epoch != self._link_epoch or self.nc is None or not self.nc.is_connected:
                return None
            return False
        except Exception:  # a reply that breaks the parsing still came from a live host
            return True
        return True

    def _settle_gone(self, gather: _Gather, name: str, message: str) -> None:
        gather.end(name, "unreachable", ErrorCode.UNREACHABLE, message)

    @staticmethod
    def _went_away(st: _HostState) -> str:
        return (
            f"the listener went away during the deploy (last: {st.status}"
            + (f", {st.last_message}" if st.last_message else "")
            + ")"
        )

    async def _watch_liveness(self, gather: _Gather) -> None:
        """Declare hosts whose listener is gone while the others are gathered.

        A host that has sent nothing at all ``liveness`` seconds after the
        request is asked for its facts: no answer there either, and it is
        unreachable at once. A host that has shown life is asked after
        ``LIVENESS_SILENCE_GRACES`` graces without a word from it, and is
        declared gone only when two probes in a row go unanswered: one that
        answers is alive (busy, or restarted and resuming the run).
        """
        loop = asyncio.get_running_loop()
        grace = self.settings.liveness
        silence = grace * LIVENESS_SILENCE_GRACES
        published = loop.time()
        probing: dict[str, asyncio.Task[None]] = {}

        def due(st: _HostState, now: float) -> bool:
            never = st.heard is None and st.alive is None
            if st.probed is not None and now - st.probed < (LIVENESS_RETRY if st.misses else grace):
                return False
            if never:
                return now - published >= grace
            if st.misses:
                return True
            return now - max(st.heard or published, st.alive or published) >= silence

        def forget(name: str, _task: asyncio.Task[None]) -> None:
            probing.pop(name, None)

        async def probe(name: str, host: Host, subject: str) -> None:
            st = gather.state[name]
            heard = st.heard
            up = await self._probe(host, subject)
            now = loop.time()
            st.probed = now
            if st.outcome is not None or up is None:
                return
            if up or st.heard != heard:
                st.alive, st.misses = now, 0
                log.debug("liveness probe of %s: its listener answers", name)
                return
            target = gather.expected[name]
            if st.heard is None and st.alive is None:
                self._settle_gone(
                    gather,
                    name,
                    f"no listener answered on {target.subject} nor on its facts subject "
                    f"within {math.ceil(now - published)}s",
                )
                return
            st.misses += 1
            log.debug("liveness probe of %s unanswered (%d in a row)", name, st.misses)
            if st.misses >= 2:
                quiet = now - max(st.heard or published, st.alive or published)
                self._settle_gone(
                    gather,
                    name,
                    f"{self._went_away(st)}: nothing from it on {target.subject} for "
                    f"{quiet:.0f}s, and {st.misses} probes of its facts subject unanswered",
                )

        try:
            while not gather.done.is_set():
                now = loop.time()
                for name, st in gather.state.items():
                    if st.outcome is not None or name in probing or not due(st, now):
                        continue
                    where = self._probe_subject(gather, name)
                    if where is None:
                        continue
                    probing[name] = asyncio.create_task(probe(name, *where))
                    probing[name].add_done_callback(functools.partial(forget, name))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gather.done.wait(), LIVENESS_TICK)
        except Exception:  # the gathering goes on without it; the deadline decides
            log.exception("liveness probing failed")
        finally:
            pending = list(probing.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _probe_silent(self, gather: _Gather) -> None:
        """At the deadline, tell a listener that vanished from one still working.

        A host that started but sent no final status is asked for its facts one
        last time: no answer means the listener is gone (unreachable, as a
        dropped SSH connection is); an answer, or a probe that proves nothing,
        means the deploy is just slow. Hosts that cannot be probed keep the
        deadline's verdict.
        """
        silent = [
            (name, where)
            for name, st in gather.state.items()
            if st.outcome is None
            and st.status is not None
            and (where := self._probe_subject(gather, name)) is not None
        ]
        if not silent:
            return
        answers = await asyncio.gather(*(self._probe(*where) for _, where in silent))
        for (name, _), up in zip(silent, answers, strict=True):
            if up is False:
                self._settle_gone(gather, name, self._went_away(gather.state[name]))

    async def _request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,
        many: bool = False,
        until: Any = None,
        accept: Callable[[bytes], Any] | None = None,
    ) -> list[Any]:
        """Publish a request with its own inbox and collect replies.

        One reply (``many=False``), or every reply until ``timeout`` (or until
        ``until(replies)`` is true). Raises :class:`NatsPermissionError` on a
        refusal and :class:`Unreachable` when no one subscribes or no reply comes.

        With ``accept``, each reply is what ``accept(data)`` returns; one it
        refuses (:class:`_Refused`) is dropped and waiting goes on, unless the
        refusal is final.
        """
        nc = await self.connection()
        inbox = self._new_inbox(nc)
        replies: list[Any] = []
        refused: list[_Refused] = []
        finished = asyncio.Event()
        problem: list[BaseException] = []

        async def on_msg(msg: Msg) -> None:
            if (msg.headers or {}).get("Status") == "503":
                problem.append(Unreachable(f"no listener is subscribed to {subject}"))
                finished.set()
                return
            try:
                replies.append(msg.data if accept is None else accept(msg.data))
            except _Refused as exc:
                refused.append(exc)
                if exc.final:
                    finished.set()
                return
            if not many or (until is not None and until(replies)):
                finished.set()

        def on_denied(kind: str, denied: str) -> None:
            if kind == "subscription" or denied == subject:
                problem.append(NatsPermissionError(permission_message(kind, denied)))
                finished.set()

        self._watchers.add(on_denied)
        sub = await nc.subscribe(inbox, cb=on_msg)
        try:
            await nc.publish(subject, payload, reply=inbox)
            with contextlib.suppress(Exception):
                await nc.flush(timeout=5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), timeout)
        finally:
            self._watchers.discard(on_denied)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if problem and not replies:
            raise problem[0]
        if not replies and not many:
            if refused and refused[-1].final:
                raise UnbelievedReply(
                    f"the reply on {subject} cannot be believed: {refused[-1].reason}"
                )
            if refused:
                raise UnbelievedReply(
                    f"no reply on {subject} within {timeout:g}s could be believed "
                    f"({len(refused)} refused: {refused[-1].reason})"
                )
            raise Unreachable(f"no reply on {subject} within {timeout:g}s")
        return replies

    def _accept_from(
        self, host: str, subject: str, request_id: str | None = None
    ) -> Callable[[bytes], Any]:
        """An ``accept`` for :meth:`_request`: the parsed answer, when ``host`` signed it."""

        def accept(data: bytes) -> Any:
            doc = _loads(data)
            refusal = self.check_reply(host, doc, request_id)
            if refusal is not None:
                self._forged_reply(host, subject, doc, refusal, request_id)
                raise _Refused(refusal[1], final=refusal[0] == NO_HOST_KEY)
            if isinstance(doc, dict):
                doc.pop(signing.SIG_FIELD, None)
            return doc

        return accept

    async def facts(self, host: Host, *, timeout: float | None = None) -> dict[str, Any]:
        """Failed units, load, memory, disk, uptime and generation of ``host``."""
        self._remember([host])
        subject = host_subjects(self.templates, hostname=host.name, tier=host.tier)["facts"]
        replies = await self._request(
            subject, b"{}", timeout=timeout or 10.0, accept=self._accept_from(host.name, subject)
        )
        doc = replies[0]
        if not isinstance(doc, dict):
            raise Unreachable(f"{host.name}: unreadable facts reply")
        return doc

    async def confirm(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        """Keep the activation of ``request_id``: each listener confirms its canary
        and answers with the outcome (``completed``, or why not: too late…)."""
        return await self._verdict(hosts, request_id, True, timeout or CONFIRM_REPLY_TIMEOUT)

    async def reject(
        self, hosts: Sequence[Host], request_id: str, *, timeout: float | None = None
    ) -> dict[str, DeployOutcome]:
        """Withdraw the activation of ``request_id``: each listener rolls back now
        and answers with the rollback's outcome."""
        return await self._verdict(hosts, request_id, False, timeout or REJECT_REPLY_TIMEOUT)

    async def _verdict(
        self, hosts: Sequence[Host], request_id: str, confirm: bool, timeout: float
    ) -> dict[str, DeployOutcome]:
        what = "confirmation" if confirm else "rejection"

        self._remember(hosts)

        async def one(host: Host) -> DeployOutcome:
            subject = host_subjects(self.templates, hostname=host.name, tier=host.tier)["confirm"]
            doc: dict[str, Any] = {"id": request_id, "hostname": host.name}
            if not confirm:
                doc["confirm"] = False
            try:
                payload = self._signed(json.dumps(doc).encode(), subject)
                replies = await self._request(
                    subject,
                    payload,
                    timeout=timeout,
                    accept=self._accept_from(host.name, subject, request_id),
                )
            except UnbelievedReply as exc:
                # Delivered, and maybe acted on: only the answer is in doubt.
                return DeployOutcome(host.name, "unreachable", None, f"{what} sent, but {exc}")
            except Unreachable as exc:
                log.warning("%s: %s not delivered: %s", host.name, what, exc)
                return DeployOutcome(host.name, "unreachable", None, f"{what} not delivered: {exc}")
            return verdict_outcome(host.name, replies[0], confirm)

        return {o.host: o for o in await asyncio.gather(*(one(h) for h in hosts))}

    async def discover(self, timeout: float = 2.0) -> list[dict[str, Any]]:
        """Every listener's discovery answer within ``timeout`` (sooner once all
        listener hosts of the inventory have answered)."""
        subject = expand(self.templates.discover, tier="_", hostname="_")
        wanted = {h.name for h in self.inventory.hosts.values() if h.has_listener}
        seen: set[Any] = set()

        def accept(data: bytes) -> dict[str, Any]:
            doc = _loads(data)
            if not isinstance(doc, dict):
                raise _Refused("unreadable")
            name = doc.get("hostname")
            verified = False
            if isinstance(name, str) and name in self.inventory.hosts:
                refusal = self.check_reply(name, doc)
                if refusal is not None:
                    self._forged_reply(name, subject, doc, refusal, None)
                    raise _Refused(refusal[1])
                verified = not self._host_key(name).exempt
            # else: a host the inventory does not hold has no key to check against
            answer = {k: v for k, v in doc.items() if k != signing.SIG_FIELD}
            answer["verified"] = verified
            seen.add(name)
            return answer

        try:
            out = await self._request(
                subject,
                b"{}",
                timeout=timeout,
                many=True,
                until=lambda _: bool(wanted) and wanted <= seen,
                accept=accept,
            )
        except Unreachable as exc:
            if isinstance(exc, NatsPermissionError):
                raise
            return []
        out.sort(key=lambda d: str(d.get("hostname")))
        return out

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        for task in list(self._tasks):
            task.cancel()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 5)
            with contextlib.suppress(Exception):
                await nc.close()
