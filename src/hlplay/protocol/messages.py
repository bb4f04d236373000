"""Deploy request and response messages, compatible with homelab-deploy.

Request:  ``{"action": "switch|boot|test|dry-activate", "revision": "...", "reply_to": "..."}``
Response: ``{"hostname", "status": "accepted|rejected|started|completed|failed",
"error": "<code>|null", "message"}``

Those fields and values are exactly homelab-deploy's, so either side
interoperates with the other. hlplay adds optional fields (``id``, ``progress``,
``duration``, ``generation``, ``revision``, ``diff``…) and actions (``build``,
``diff``, ``rollback``, ``confirm``); a peer that does not know them ignores them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hlplay.subjectrules import LITERAL_SUBJECT_RE as REPLY_SUBJECT_RE
from hlplay.subjectrules import SUBJECT_TOKEN_RE as SUBJECT_TOKEN_RE
from hlplay.subjectrules import is_subject_token as is_subject_token

PROTOCOL_VERSION = 1


class Action(StrEnum):
    """The deploy vocabulary: every action a request may carry, declared once."""

    SWITCH = "switch"
    BOOT = "boot"
    TEST = "test"
    DRY_ACTIVATE = "dry-activate"
    BUILD = "build"
    DIFF = "diff"
    ROLLBACK = "rollback"
    CONFIRM = "confirm"
    NOOP = "noop"


#: Actions of homelab-deploy, which every listener understands.
BASE_ACTIONS: tuple[str, ...] = (Action.SWITCH, Action.BOOT, Action.TEST, Action.DRY_ACTIVATE)
#: Actions hlplay's listener adds.
EXTRA_ACTIONS: tuple[str, ...] = tuple(a.value for a in Action if a.value not in BASE_ACTIONS)
ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)
#: Actions that activate a built system (``switch-to-configuration <action>``).
ACTIVATE_ACTIONS: tuple[str, ...] = BASE_ACTIONS
#: Actions that build the host's system first.
BUILD_ACTIONS: tuple[str, ...] = (Action.BUILD, Action.DIFF, *BASE_ACTIONS)
#: Actions that set the system profile (a new generation).
PROFILE_ACTIONS: tuple[str, ...] = (Action.SWITCH, Action.BOOT)

#: Statuses that end a request for one host.
FINAL_STATUSES = frozenset({"rejected", "completed", "failed"})
#: Every status a listener sends. Progress lines travel as ``started`` responses
#: with a ``progress`` list, so a homelab-deploy client that knows only the
#: five statuses of the seed still reads them; ``progress`` is accepted from
#: peers that send it as a status of its own.
STATUSES = (
    "accepted",
    "rejected",
    "started",
    "progress",
    "awaiting_confirmation",
    "completed",
    "failed",
)
#: Sent (never final) when a host activated and armed its watchdog: it keeps
#: the new system only if the controller confirms (``confirm`` subject) in time.
AWAITING_CONFIRMATION = "awaiting_confirmation"

REVISION_RE = re.compile(r"^[A-Za-z0-9._/+@-]+$")
REVISION_MAX = 200
REPLY_SUBJECT_MAX = 255
REQUEST_ID_MAX = 100
MAX_MESSAGE_BYTES = 64 * 1024


class ErrorCode(StrEnum):
    """Error codes carried in a response's ``error`` field (see docs/protocol.md)."""

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    INVALID_ACTION = "invalid_action"
    INVALID_REVISION = "invalid_revision"
    INVALID_REPLY_TO = "invalid_reply_to"
    ALREADY_RUNNING = "already_running"
    SHUTTING_DOWN = "shutting_down"
    BUILD_FAILED = "build_failed"
    ACTIVATION_FAILED = "activation_failed"
    HEALTH_FAILED = "health_failed"
    CONFIRM_TIMEOUT = "confirm_timeout"
    ROLLED_BACK = "rolled_back"
    TIMEOUT = "timeout"
    EXEC_FAILED = "exec_failed"
    NO_PREVIOUS_GENERATION = "no_previous_generation"
    NOT_SUPPORTED = "not_supported"
    INVALID_OPTIONS = "invalid_options"
    NOT_AWAITING = "not_awaiting"  # a confirm or reject for no waiting activation
    INTERRUPTED = "interrupted"  # the listener stopped during activation; see the state
    INTERNAL = "internal"
    # Signed messages (hlplay.protocol.signing, docs/security.md):
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    KEY_NOT_ALLOWED = "key_not_allowed"
    STALE = "stale_request"
    REPLAYED = "replayed"
    TOO_MANY_REQUESTS = "too_many_requests"  # the replay guard is full
    # Set by the controller, never sent by a listener:
    PERMISSION_DENIED = "permission_denied"
    UNREACHABLE = "unreachable"
    NO_FINAL_STATUS = "no_final_status"


class ProtocolError(ValueError):
    """A message that does not follow the protocol; carries the error code to reply with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_revision(revision: object) -> str:
    """Return the revision if it is a safe branch, tag or commit name, else raise."""
    if not isinstance(revision, str) or not revision:
        raise ProtocolError(ErrorCode.INVALID_REVISION, "revision must be a non-empty string")
    if len(revision) > REVISION_MAX:
        raise ProtocolError(
            ErrorCode.INVALID_REVISION, f"revision longer than {REVISION_MAX} characters"
        )
    if revision.startswith("-"):
        raise ProtocolError(ErrorCode.INVALID_REVISION, "revision must not start with '-'")
    if not REVISION_RE.fullmatch(revision) or ".." in revision:
        raise ProtocolError(
            ErrorCode.INVALID_REVISION,
            "revision may contain only letters, digits and . _ / + @ - (no '..')",
        )
    return revision


def is_reply_subject(subject: object) -> bool:
    """True for a subject a listener may publish a response to."""
    return (
        isinstance(subject, str)
        and 0 < len(subject) <= REPLY_SUBJECT_MAX
        and bool(REPLY_SUBJECT_RE.fullmatch(subject))
    )


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_request_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= REQUEST_ID_MAX and value.isprintable()


def salvage_reply(data: bytes | str) -> tuple[str | None, str | None]:
    """``(reply_to, id)`` of a request that failed validation, where they are sound.

    A rejection should still reach the sender and carry its id; anything
    unsound is dropped rather than trusted.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    reply_to = doc.get("reply_to")
    req_id = doc.get("id")
    return (
        reply_to if is_reply_subject(reply_to) else None,
        req_id if is_request_id(req_id) else None,
    )


@dataclass
class DeployRequest:
    action: str
    revision: str
    reply_to: str = ""
    id: str | None = None
    # hlplay extensions
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "action": self.action,
            "revision": self.revision,
            "reply_to": self.reply_to,
        }
        if self.id is not None:
            doc["id"] = self.id
        if self.options:
            doc["options"] = self.options
        return json.dumps(doc).encode()

    @classmethod
    def parse(cls, data: bytes | str) -> DeployRequest:
        """Parse and strictly validate a request; raise :class:`ProtocolError`."""
        if isinstance(data, bytes) and len(data) > MAX_MESSAGE_BYTES:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "request too large")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ProtocolError(ErrorCode.INVALID_JSON, "request is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "request must be a JSON object")
        if "status" in doc:
            # A response is never a request, even one that carries action and
            # revision: a response bounced onto a deploy subject must not deploy.
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "a response is not a request")
        action = doc.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            raise ProtocolError(
                ErrorCode.INVALID_ACTION,
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}",
            )
        revision = validate_revision(doc.get("revision"))
        reply_to = doc.get("reply_to", "")
        if reply_to is None:
            reply_to = ""
        if not isinstance(reply_to, str) or (reply_to and not is_reply_subject(reply_to)):
            raise ProtocolError(ErrorCode.INVALID_REPLY_TO, "reply_to is not a valid subject")
        req_id = doc.get("id")
        if req_id is not None and not is_request_id(req_id):
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST,
                f"id must be a string of at most {REQUEST_ID_MAX} printable characters",
            )
        options = doc.get("options", {})
        if not isinstance(options, dict):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "options must be an object")
        return cls(action=action, revision=revision, reply_to=reply_to, id=req_id, options=options)


def as_request(request: DeployRequest | Mapping[str, Any]) -> DeployRequest:
    """A validated request; a mapping is checked exactly as a message off the wire.

    Raises :class:`ProtocolError`.
    """
    if isinstance(request, DeployRequest):
        req = request
    else:
        action = request.get("action")
        if not isinstance(action, str):
            raise ProtocolError(ErrorCode.INVALID_ACTION, "the request lacks an action")
        options = request.get("options") or {}
        if not isinstance(options, Mapping):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "options must be an object")
        rid = request.get("id")
        req = DeployRequest(
            action=action,
            revision=str(request.get("revision") or "HEAD"),
            id=None if rid is None else str(rid),
            options=dict(options),
        )
    # The one validation a listener applies, whoever built the request.
    try:
        return DeployRequest.parse(req.to_json())
    except TypeError as exc:  # options that are not JSON
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"options: {exc}") from None


@dataclass
class DeployResponse:
    hostname: str
    status: str
    error: str | None = None
    message: str = ""
    id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # progress, duration, generation…

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress_lines(self) -> list[str]:
        """Progress lines carried by this response (a list, or one string)."""
        value = self.extra.get("progress")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [str(v) for v in value]
        return []

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "hostname": self.hostname,
            "status": self.status,
            "error": self.error,
            "message": self.message,
        }
        if self.id is not None:
            doc["id"] = self.id
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return json.dumps(doc).encode()

    @classmethod
    def parse(cls, data: bytes | str) -> DeployResponse:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ProtocolError(ErrorCode.INVALID_JSON, "response is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "response must be a JSON object")
        hostname, status = doc.get("hostname"), doc.get("status")
        if not isinstance(hostname, str) or not isinstance(status, str):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "response lacks hostname or status")
        error = doc.get("error")
        core = ("hostname", "status", "error", "message", "id")
        extra = {k: v for k, v in doc.items() if k not in core}
        return cls(
            hostname=hostname,
            status=status,
            error=error if isinstance(error, str) else None,
            message=str(doc.get("message") or ""),
            id=doc.get("id") if isinstance(doc.get("id"), str) else None,
            extra=extra,
        )
