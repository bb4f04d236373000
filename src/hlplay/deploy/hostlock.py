"""One run at a time on a host without a listener: a lock kept on the host itself.

A listener refuses a second request with ``already_running``; SSH and local
hosts have no listener, and two controllers deploying one of them at once
used to both activate, the older revision last. The lock lives on the host,
under its state directory, so that every controller sees it whatever machine
it runs on, and it is taken through the host's command runner like every
other step of the pipeline.

``mkdir`` is atomic over any runner, so the lock is a directory
(``<state-dir>/<profile>.lock``) holding the holder's identity (controller,
pid, request id, action, revision) and the host's clock at the start. Every
time comes from the host's clock, never the controller's: two controllers
with skewed clocks still agree on a lock's age.

A lock is *stale*, and the next run takes it over with a note in its
progress, when it is older than the time limit its holder gave plus
:data:`STALE_MARGIN` (a controller killed mid-run never releases it; its pid
is on another machine, so age is all there is to go on), or, while its holder
waits for confirmation, once the confirmation window plus the margin is over.
A takeover holds a second directory (``….lock.break``) while it replaces the
stale lock, so two controllers taking over at once never both win.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hlplay.nix import system
from hlplay.proc import CommandRunner
from hlplay.protocol.messages import DeployRequest

#: How long past its own time limit (or its confirmation window) a lock still
#: counts as held: a watchdog's rollback after the window runs in this time.
STALE_MARGIN = 60.0
#: A run's time limit when the caller gave none: the longest build plus activation.
DEFAULT_RUN_LIMIT = system.DEFAULT_BUILD_TIMEOUT + system.DEFAULT_ACTIVATE_TIMEOUT
#: A lock directory without a holder file (its taker died between the two
#: steps) counts as stale this long after it was made.
HOLDERLESS_GRACE = 30.0
LOCK_TIMEOUT = 30.0

# $6 "take": make the lock; "takeover": replace the holder whose token is $7.
# Exit 0: taken; 3: held (the holder follows); 4: someone else is taking it over.
ACQUIRE_SCRIPT = r"""
d=$1 tok=$2 key=$3 ttl=$4 info=$5 mode=$6 stale=$7
mkdir -p -- "${d%/*}" || exit 2
take() {
  mkdir -- "$d" 2>/dev/null || return 1
  if printf '%s\n%s\n%s\n%s\n%s\n' "$tok" "$key" "$(date +%s)" "$ttl" "$info" > "$d/holder.new" \
    && mv -f -- "$d/holder.new" "$d/holder"; then
    return 0
  fi
  rm -rf -- "$d"
  return 2
}
if [ "$mode" = takeover ]; then
  if ! mkdir -- "$d.break" 2>/dev/null; then
    # a taker that died mid-takeover leaves its directory: a minute later it is gone
    [ -n "$(find "$d.break" -maxdepth 0 -mmin +1 2>/dev/null)" ] && rmdir -- "$d.break"
    exit 4
  fi
  cur=
  [ -r "$d/holder" ] && read -r cur < "$d/holder"
  [ "$cur" = "$stale" ] && rm -rf -- "$d"
  take; rc=$?
  rmdir -- "$d.break" 2>/dev/null
else
  take; rc=$?
fi
[ "$rc" = 1 ] || exit "$rc"
echo "$(date +%s)"
stat -c %Y -- "$d" 2>/dev/null || echo 0
if [ -r "$d/until" ]; then cat -- "$d/until"; else echo -; fi
cat -- "$d/holder" 2>/dev/null
exit 3
"""

# Opens the confirmation window: the lock counts as free $3 s from now (the
# host's clock), and a confirm or reject naming request $4 releases it.
HOLD_SCRIPT = (
    'd=$1; read -r cur < "$d/holder" && [ "$cur" = "$2" ] || exit 4; '
    'echo "$(( $(date +%s) + $3 )) $4" > "$d/until.new" && mv -f -- "$d/until.new" "$d/until"'
)

# $2 "token": release the lock taken with token $3; "request": the lock of request $3.
RELEASE_SCRIPT = r"""
d=$1 by=$2 v=$3
{ read -r tok; read -r key; } < "$d/holder" 2>/dev/null || exit 4
ukey=
[ -r "$d/until" ] && read -r u ukey < "$d/until"
case $by in
  token) [ "$tok" = "$v" ] ;;
  *) [ "$key" = "$v" ] || [ "$ukey" = "$v" ] ;;
esac || exit 5
rm -rf -- "$d"
"""


class LockError(Exception):
    """The lock could not be taken (not that it is held: the host refused the steps)."""


class LockBusy(Exception):
    """Another run holds the host's lock; the message names it."""

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds a host's lock, as the host told it."""

    token: str
    request_key: str
    started: int  # host clock
    ttl: float  # the holder's time limit
    now: int  # host clock when read
    until: int | None = None  # awaiting confirmation: free after this (host clock)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def age(self) -> int:
        return max(0, self.now - self.started)

    @property
    def free_at(self) -> float:
        """When the lock counts as stale (host clock)."""
        if self.until is not None:
            return self.until + STALE_MARGIN
        return self.started + self.ttl + STALE_MARGIN

    @property
    def stale(self) -> bool:
        return self.now > self.free_at

    def describe(self, hostname: str) -> str:
        if not self.token:
            return f"a run is starting on {hostname}: its lock was made {self.age} s ago"
        i = self.info
        action = str(i.get("action") or "run")
        rev = i.get("revision")
        who = f"{i.get('controller', '?')}:{i.get('pid', '?')}"
        text = f"a {action}" + (f" of {rev}" if rev else "")
        text += f" is already running on {hostname}, started {self.age} s ago by {who}"
        if i.get("request_id"):
            text += f", request {i['request_id']}"
        if self.until is not None:
            text += f"; it awaits confirmation for {max(0, self.until - self.now)} s more"
        return text


def parse_holder(text: str) -> Holder:
    """The holder from :data:`ACQUIRE_SCRIPT`'s report (exit 3)."""
    lines = text.splitlines()
    lines += [""] * (8 - len(lines))
    now, made, until_line = _int(lines[0]), _int(lines[1]), lines[2]
    until = _int(until_line.split()[0]) if until_line.strip() not in ("", "-") else None
    token, key = lines[3], lines[4]
    if not token:
        # no holder file yet (or its taker died before writing it): the
        # directory's own time stands in for the start
        return Holder("", "", made, HOLDERLESS_GRACE - STALE_MARGIN, now)
    try:
        info = json.loads(lines[7])
    except ValueError:
        info = {}
    try:
        ttl = float(lines[6])
    except ValueError:
        ttl = DEFAULT_RUN_LIMIT
    return Holder(
        token,
        key,
        _int(lines[5]),
        ttl,
        now,
        until,
        info if isinstance(info, dict) else {},
    )


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 0


def lock_path(profile: str, state_dir: str | None) -> str:
    system.check_profile(profile)
    where = system.state_dir_for(profile, state_dir)
    return posixpath.join(where, posixpath.basename(profile) + ".lock")


def request_key(request_id: str | None) -> str:
    """A request id as the lock file keeps it: one line, no white space."""
    if not request_id:
        return "-"
    if system.REQUEST_ID_RE.fullmatch(request_id):
        return request_id
    return "h" + hashlib.sha256(request_id.encode()).hexdigest()[:40]


@dataclass
class HostLock:
    """A lock this run holds (or tried to take: releasing an untaken one is harmless)."""

    runner: CommandRunner
    path: str
    token: str
    #: the stale holder this run took the lock over from
    taken_over: Holder | None = None

    async def hold_for_confirmation(self, seconds: float, request_id: str | None) -> bool:
        """Keep the lock while the host waits for confirmation; free after ``seconds``."""
        res = await self.runner(
            [
                "sh", "-c", HOLD_SCRIPT, "hlplay-lock", self.path, self.token,
                str(max(1, round(seconds))), request_key(request_id),
            ],
            LOCK_TIMEOUT,
        )  # fmt: skip
        return res.rc == 0

    async def release(self) -> None:
        """Best effort: a lock left behind expires by its age."""
        with contextlib.suppress(Exception):
            await self.runner(
                ["sh", "-c", RELEASE_SCRIPT, "hlplay-unlock", self.path, "token", self.token],
                LOCK_TIMEOUT,
            )


async def acquire(
    runner: CommandRunner,
    *,
    hostname: str,
    profile: str,
    state_dir: str | None,
    request: DeployRequest,
    time_limit: float | None,
    note: Callable[[str], Awaitable[None]] | None = None,
) -> HostLock:
    """Take ``hostname``'s lock for ``request``; :class:`LockBusy` when another run holds it."""
    try:
        path = lock_path(profile, state_dir)
    except system.NixOpError as exc:
        raise LockError(exc.message) from None
    lock = HostLock(runner, path, uuid.uuid4().hex)
    ttl = time_limit if time_limit is not None and time_limit > 0 else DEFAULT_RUN_LIMIT
    info = json.dumps(
        {
            "controller": socket.gethostname(),
            "pid": os.getpid(),
            "request_id": request.id,
            "action": request.action,
            "revision": request.revision,
        },
        separators=(",", ":"),
    )

    async def attempt(mode: str, stale: str = "") -> tuple[int, str]:
        argv = [
            "sh", "-c", ACQUIRE_SCRIPT, "hlplay-lock", path, lock.token,
            request_key(request.id), f"{ttl:.0f}", info, mode, stale,
        ]  # fmt: skip
        res = await runner(argv, LOCK_TIMEOUT)
        if res.rc in (0, 3, 4):
            return res.rc, res.stdout
        raise LockError(system.tail_message(f"taking the lock {path}", res))

    try:
        rc, out = await attempt("take")
        if rc == 0:
            return lock
        holder = parse_holder(out)
        if not holder.stale:
            raise LockBusy(holder.describe(hostname) + _free_in(holder, path), holder)
        rc, out = await attempt("takeover", holder.token)
    except (LockBusy, LockError):
        raise
    except BaseException:
        # interrupted (cancelled, cut off) after the host made the lock, perhaps:
        # the token tells ours from anyone else's
        await lock.release()
        raise
    if rc == 4:
        raise LockBusy(f"another run is taking over the stale lock of {hostname} ({path})")
    if rc == 3:
        other = parse_holder(out)
        raise LockBusy(other.describe(hostname) + _free_in(other, path), other)
    lock.taken_over = holder
    if note is not None:
        await note(f"took over a stale lock: {_stale_text(holder, hostname)}")
    return lock


def _free_in(holder: Holder, path: str) -> str:
    left = max(0, round(holder.free_at - holder.now))
    return f" (the lock {path} counts as stale in {left} s)"


def _stale_text(holder: Holder, hostname: str) -> str:
    if not holder.token:
        return f"{hostname}'s lock had no holder for {holder.age} s"
    text = holder.describe(hostname).replace(" is already running", " held the lock")
    if holder.until is not None:
        return text.split("; it awaits")[0] + ", and its confirmation window is over"
    return text + f", past its time limit of {holder.ttl:g} s"


async def release_request(
    runner: CommandRunner, profile: str, state_dir: str | None, request_id: str
) -> bool:
    """Release the lock of ``request_id`` (a confirm or reject ended its run); best effort."""
    try:
        path = lock_path(profile, state_dir)
        res = await runner(
            ["sh", "-c", RELEASE_SCRIPT, "hlplay-unlock", path, "request", request_key(request_id)],
            LOCK_TIMEOUT,
        )
    except Exception:
        return False
    return res.rc == 0
