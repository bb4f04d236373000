"""System operations on one host, as colmena and deploy-rs perform them.

Build a toplevel, copy its closure, set the system profile, run
``switch-to-configuration``, list generations and roll back. Every command goes
through a :data:`~hlplay.deploy.contract.CommandRunner` as an argument vector,
so the same code runs on the host (the listener) and from the controller over
SSH. The few steps that need a shell (appending a record, the confirmation
watchdog) run *fixed* script text with every value passed as a positional
parameter, never interpolated into the script.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hlplay.nix import errors
from hlplay.proc import CommandResult, CommandRunner
from hlplay.protocol.messages import ACTIVATE_ACTIONS

STORE_PATH_RE = re.compile(r"^/nix/store/[0-9a-z]{32}-[A-Za-z0-9+._?=-]+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

DEFAULT_BUILD_TIMEOUT = 3600.0
DEFAULT_ACTIVATE_TIMEOUT = 600.0
QUICK_TIMEOUT = 60.0


class NixOpError(Exception):
    """A system operation failed; ``result`` is the command that failed, if any."""

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


@dataclass(frozen=True)
class Generation:
    """One generation of a profile (``<profile>-<number>-link``)."""

    number: int
    path: str  # the store path it points to
    time: float  # when it was created (unix seconds)
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deployment:
    """One line of a host's deployment record: which revision made which generation."""

    time: float
    generation: int
    path: str
    revision: str
    action: str


# -- validation --------------------------------------------------------------


def check_profile(profile: str) -> str:
    """A profile path must be absolute and plain (it is passed to find and nix-env)."""
    if (
        not profile.startswith("/")
        or profile.endswith("/")
        or any(c in profile for c in "\n\r\t\0")
        or "/../" in profile + "/"
    ):
        raise NixOpError(f"invalid profile path {profile!r}")
    return profile


def check_store_path(path: str) -> str:
    if not STORE_PATH_RE.fullmatch(path):
        raise NixOpError(f"not a store path: {path!r}")
    return path


def env_prefix(env: Mapping[str, str] | None) -> list[str]:
    """``env K=V …`` in front of a command: the runner has no environment parameter."""
    if not env:
        return []
    out = ["env"]
    for key, value in env.items():
        if not ENV_NAME_RE.fullmatch(str(key)) or "\0" in str(value):
            raise NixOpError(f"invalid environment variable {key!r}")
        out.append(f"{key}={value}")
    return out


def tail(result: CommandResult, lines: int = 5) -> str:
    """The last lines of a command's output, for a one-line error message."""
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    text = [t for t in text if t.strip()][-lines:]
    return " | ".join(t.strip() for t in text)[:600]


def tail_message(what: str, result: CommandResult, flake_dir: str | None = None) -> str:
    """``<what> failed (exit N): <first error line (file:line:col)>``.

    Nix prints its cause first, so the message takes the ``error:`` line
    rather than the last lines; :func:`hlplay.nix.errors.detail` has the whole of it.
    """
    text = result.stderr.strip() or result.stdout.strip()
    detail = errors.summary(errors.detail(text, flake_dir))
    rc = "timed out" if result.timed_out else f"exit {result.rc}"
    return f"{what} failed ({rc})" + (f": {detail}" if detail else "")


def _fail(what: str, result: CommandResult) -> NixOpError:
    return NixOpError(tail_message(what, result), result)


# -- build and copy ----------------------------------------------------------


# Hosts need not enable the new CLI and flakes in nix.conf for hlplay to use them.
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]


def build_argv(installable: str) -> list[str]:
    # Nix 2.8 has no --print-out-paths: --json gives the outputs.
    return [*NIX, "build", "--json", "--no-link", installable]


def parse_build_json(text: str) -> str:
    """The ``out`` path of the first result of ``nix build --json``."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise NixOpError("nix build printed no JSON") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        raise NixOpError("nix build printed an unexpected result")
    outputs = doc[0].get("outputs") or {}
    path = outputs.get("out") if isinstance(outputs, dict) else None
    if not isinstance(path, str):
        raise NixOpError("nix build reported no 'out' output")
    return check_store_path(path)


async def build(
    runner: CommandRunner, installable: str, *, timeout: float | None = DEFAULT_BUILD_TIMEOUT
) -> str:
    """Build a flake installable; return the toplevel's store path."""
    res = await runner(build_argv(installable), timeout)
    if res.rc != 0:
        raise _fail(f"nix build {installable}", res)
    return parse_build_json(res.stdout)


async def copy_closure(
    runner: CommandRunner,
    path: str,
    store_uri: str | None,
    *,
    from_uri: str | None = None,
    substitute: bool = False,
    timeout: float | None = None,
) -> None:
    """``nix copy`` a closure to another store (``ssh-ng://root@host``), or from one.

    ``store_uri`` None copies into the runner's own store (with ``from_uri``);
    ``substitute`` lets the destination fetch what its substituters have
    instead of receiving it (``--substitute-on-destination``).
    """
    check_store_path(path)
    argv = [*NIX, "copy", "--no-check-sigs"]  # Nix 2.8 refuses unsigned paths without it
    for flag, uri in (("--from", from_uri), ("--to", store_uri)):
        if uri is None:
            continue
        if not uri or uri.startswith("-") or any(c.isspace() for c in uri):
            raise NixOpError(f"invalid store URI {uri!r}")
        argv += [flag, uri]
    if store_uri is None and from_uri is None:
        raise NixOpError("nix copy needs a store to copy to or from")
    if substitute:
        argv.append("--substitute-on-destination")
    res = await runner([*argv, path], timeout)
    if res.rc != 0:
        where = f"to {store_uri}" if store_uri else f"from {from_uri}"
        raise _fail(f"nix copy {where}", res)


async def path_info_json(
    runner: CommandRunner, path: str, *, timeout: float | None = QUICK_TIMEOUT
) -> str:
    """``nix path-info --recursive --json PATH`` (the closure with NAR sizes)."""
    check_store_path(path)
    res = await runner([*NIX, "path-info", "--recursive", "--json", path], timeout)
    if res.rc != 0:
        raise _fail(f"nix path-info {path}", res)
    return res.stdout


# -- profiles and generations ------------------------------------------------


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", name)


def parse_generation_listing(text: str, base: str) -> list[Generation]:
    """Parse ``find -printf '%f\\t%l\\t%T@\\n'`` over a profile's directory."""
    link_re = re.compile(rf"^{re.escape(base)}-(\d+)-link$")
    current_link = None
    gens: list[tuple[int, str, float]] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, target, mtime = parts
        if name == base:
            current_link = posixpath.basename(target)
            continue
        m = link_re.match(name)
        if m:
            try:
                stamp = float(mtime)
            except ValueError:
                stamp = 0.0
            gens.append((int(m.group(1)), target, stamp))
    gens.sort()
    return [
        Generation(number=n, path=p, time=t, current=f"{base}-{n}-link" == current_link)
        for n, p, t in gens
    ]


def parse_nix_env_generations(text: str) -> list[tuple[int, float, bool]]:
    """Parse ``nix-env --list-generations``: (number, time, current)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*(\(current\))?", line)
        if m:
            stamp = time.mktime(time.strptime(m.group(2), "%Y-%m-%d %H:%M:%S"))
            out.append((int(m.group(1)), stamp, bool(m.group(3))))
    return out


async def list_generations(
    runner: CommandRunner, profile: str, *, timeout: float | None = QUICK_TIMEOUT
) -> list[Generation]:
    """A profile's generations, oldest first, read from its ``-N-link`` symlinks.

    One ``find`` reads every link (name, target, time) at once, much faster
    than ``nix-env --list-generations`` plus a ``readlink`` per generation,
    which remain the fallback where ``find`` lacks ``-printf``.
    """
    check_profile(profile)
    directory, base = posixpath.split(profile)
    res = await runner(
        [
            "find", directory, "-maxdepth", "1",
            "(", "-name", _glob_escape(base), "-o", "-name", _glob_escape(base) + "-*-link", ")",
            "-printf", "%f\\t%l\\t%T@\\n",
        ],
        timeout,
    )  # fmt: skip
    if res.rc == 0:
        return parse_generation_listing(res.stdout, base)
    listing = await runner(["nix-env", "-p", profile, "--list-generations"], timeout)
    if listing.rc != 0:
        if "No such file" in res.stderr or not listing.stdout.strip():
            return []
        raise _fail("listing generations", listing)
    entries = parse_nix_env_generations(listing.stdout)
    if not entries:
        return []
    links = [f"{profile}-{n}-link" for n, _, _ in entries]
    paths = await runner(["readlink", "-f", "--", *links], timeout)
    targets = paths.stdout.splitlines() if paths.rc == 0 else [""] * len(links)
    return [
        Generation(number=n, path=p, time=t, current=c)
        for (n, t, c), p in zip(entries, targets, strict=False)
    ]


async def current_generation(
    runner: CommandRunner, profile: str, *, timeout: float | None = QUICK_TIMEOUT
) -> Generation | None:
    for gen in await list_generations(runner, profile, timeout=timeout):
        if gen.current:
            return gen
    return None


def previous_of(gens: Sequence[Generation], number: int | None) -> Generation | None:
    """The newest generation older than ``number`` (what ``--rollback`` picks)."""
    older = [g for g in gens if number is None or g.number < number]
    return older[-1] if older else None


async def set_profile(
    runner: CommandRunner, profile: str, path: str, *, timeout: float | None = QUICK_TIMEOUT
) -> None:
    check_profile(profile)
    check_store_path(path)
    res = await runner(["nix-env", "-p", profile, "--set", path], timeout)
    if res.rc != 0:
        raise _fail(f"setting profile {profile}", res)


async def switch_generation(
    runner: CommandRunner, profile: str, number: int, *, timeout: float | None = QUICK_TIMEOUT
) -> None:
    check_profile(profile)
    res = await runner(["nix-env", "-p", profile, "--switch-generation", str(int(number))], timeout)
    if res.rc != 0:
        raise _fail(f"switching {profile} to generation {number}", res)


async def delete_generation(
    runner: CommandRunner, profile: str, number: int, *, timeout: float | None = QUICK_TIMEOUT
) -> None:
    check_profile(profile)
    res = await runner(
        ["nix-env", "-p", profile, "--delete-generations", str(int(number))], timeout
    )
    if res.rc != 0:
        raise _fail(f"deleting generation {number} of {profile}", res)


# -- activation --------------------------------------------------------------


#: Where systemd keeps its runtime state: present exactly when systemd is PID 1
#: (``sd_booted(3)``), the test nixos-rebuild-ng makes before using systemd-run.
SYSTEMD_RUN_DIR = "/run/systemd/system"
#: The running system on a NixOS host (``readlink -f`` gives its toplevel).
CURRENT_SYSTEM = "/run/current-system"
#: Variables systemd-run forwards by name (``-E NAME`` without a value passes the
#: caller's value, if it has one), as nixos-rebuild-ng does.
SYSTEMD_RUN_PASS_ENV = ("LOCALE_ARCHIVE", "NIXOS_INSTALL_BOOTLOADER")
UNIT_PREFIX = "hlplay-switch-to-configuration-"
UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@-]{1,200}$")

#: switch-to-configuration's exit status when the new system *is* active but some
#: units failed to start, restart or reload (switch-to-configuration-ng sets
#: ``exit_code = 4`` and prints "warning: the following units failed: …").
EXIT_UNITS_FAILED = 4
_FAILED_UNITS_RE = re.compile(r"the following units failed: (.+)$", re.MULTILINE)


def transient_unit_name(prefix: str, unique: str | None = None) -> str:
    """``<prefix><random>``: a transient unit name no other run uses."""
    import uuid

    name = prefix + (unique or uuid.uuid4().hex[:16])
    if not UNIT_RE.fullmatch(name):
        raise NixOpError(f"invalid unit name {name!r}")
    return name


def activation_unit_name(unique: str | None = None) -> str:
    """A transient unit name no other activation uses: a switch never interleaves."""
    return transient_unit_name(UNIT_PREFIX, unique)


#: Runs an activation (``"$@"``) where no systemd can hold it in a unit of its
#: own: a plain child would die with its caller (an SSH channel that closes, a
#: timeout(1) that kills its process group, a listener that is stopped) and
#: leave the host half-switched. ``setsid`` puts it in a session and process
#: group of its own, with no terminal and no pipe back to the caller, so none
#: of those reaches it; the script waits for it and hands its output and
#: status on. The background child of a non-interactive shell is never a
#: group leader, so setsid execs it in place and ``$!`` is the activation.
#: When the caller is gone, ``cat`` fails on the closed pipe (or the script
#: was killed) and the output stays behind for whoever asks how it ended.
DETACH_SCRIPT = (
    'command -v setsid >/dev/null 2>&1 || exec "$@"; '
    'd=$(mktemp -d "${TMPDIR:-/tmp}/hlplay-activation.XXXXXX") || exec "$@"; '
    'setsid "$@" </dev/null >"$d/out" 2>"$d/err" & '
    "wait $!; rc=$?; "
    'cat -- "$d/out" && cat -- "$d/err" >&2 && rm -rf -- "$d"; '
    'exit "$rc"'
)


def activation_argv(
    toplevel: str,
    action: str,
    env: Mapping[str, str] | None = None,
    *,
    unit: str | None = None,
) -> list[str]:
    """The command that runs ``<toplevel>/bin/switch-to-configuration <action>``.

    With ``unit`` (hosts running systemd) it runs under ``systemd-run`` in a
    transient service of that name, as nixos-rebuild-ng does: the activation
    lives in its own cgroup, so it runs to completion when the caller (an SSH
    session, a listener the new system restarts) dies. ``--pipe`` keeps its
    output and exit status on the caller's side while it lives.

    Without ``unit`` it runs under :data:`DETACH_SCRIPT`: in a session of its
    own, its output in a temporary directory, so that it too survives the
    caller while the caller still gets its output and exit status.
    """
    if action not in ACTIVATE_ACTIONS:
        raise NixOpError(f"unknown activation action {action!r}")
    if not toplevel.startswith("/") or "\n" in toplevel:
        raise NixOpError(f"invalid system path {toplevel!r}")
    command = [f"{toplevel}/bin/switch-to-configuration", action]
    if unit is None:
        return ["sh", "-c", DETACH_SCRIPT, "hlplay-activate", *env_prefix(env), *command]
    if not UNIT_RE.fullmatch(unit):
        raise NixOpError(f"invalid unit name {unit!r}")
    given = env_prefix(env)[1:]  # validated K=V
    named = {kv.split("=", 1)[0] for kv in given}
    argv = ["systemd-run"]
    for name in SYSTEMD_RUN_PASS_ENV:
        if name not in named:
            argv += ["-E", name]
    for kv in given:
        argv += ["-E", kv]
    argv += [
        "--collect",
        "--no-ask-password",
        "--pipe",
        "--quiet",
        "--service-type=exec",
        f"--unit={unit}",
    ]
    return [*argv, *command]


async def has_systemd(runner: CommandRunner, *, timeout: float | None = QUICK_TIMEOUT) -> bool:
    """Whether systemd runs the host (``test -d /run/systemd/system``, through the runner)."""
    res = await runner(["test", "-d", SYSTEMD_RUN_DIR], timeout)
    return res.rc == 0


RESOLVE_SCRIPT = 'test -e "$1" && readlink -f -- "$1"'


async def resolve_existing(
    runner: CommandRunner, path: str, *, timeout: float | None = QUICK_TIMEOUT
) -> str | None:
    """Where ``path`` leads (``readlink -f``), or None when it does not exist."""
    if not path.startswith("/") or any(c in path for c in "\n\r\0"):
        raise NixOpError(f"invalid path {path!r}")
    res = await runner(["sh", "-c", RESOLVE_SCRIPT, "hlplay-resolve", path], timeout)
    target = res.stdout.strip() if res.rc == 0 else ""
    return target or None


NIXOS_TOPLEVEL_SCRIPT = 'test ! -e "$1/init" || test -e "$1/nixos-version"'


async def check_nixos_toplevel(
    runner: CommandRunner, path: str, *, timeout: float | None = QUICK_TIMEOUT
) -> None:
    """Refuse a NixOS-looking toplevel (it has ``init``) without ``nixos-version``.

    A real toplevel always has both; one with ``init`` but no ``nixos-version``
    is not a system to point the boot profile at. Toplevels without ``init``
    (hlplay's test systems) are not NixOS systems and pass unchecked.
    """
    check_store_path(path)
    res = await runner(["sh", "-c", NIXOS_TOPLEVEL_SCRIPT, "hlplay-check", path], timeout)
    if res.rc != 0:
        raise NixOpError(f"{path} has an init but no nixos-version: not a NixOS system", res)


def failed_units(result: CommandResult) -> list[str]:
    """The units switch-to-configuration names as failed ("the following units failed: …")."""
    out: list[str] = []
    for text in (result.stderr, result.stdout):
        for m in _FAILED_UNITS_RE.finditer(text):
            for name in m.group(1).split(","):
                name = name.strip()
                if name and name not in out:
                    out.append(name)
    return out


async def switch_to_configuration(
    runner: CommandRunner,
    toplevel: str,
    action: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_ACTIVATE_TIMEOUT,
    unit: str | None = None,
) -> CommandResult:
    """Run ``<toplevel>/bin/switch-to-configuration <action>``; the result, never raises.

    ``unit``: run it under systemd-run in that transient unit; without one it
    runs detached in a session of its own (see :func:`activation_argv`).
    Either way it outlives a caller that dies mid-activation.
    """
    return await runner(activation_argv(toplevel, action, env, unit=unit), timeout)


@dataclass
class RollbackOutcome:
    """What a rollback did: where the host went back to, and whether it worked."""

    ok: bool
    generation: int | None = None
    path: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def roll_back(
    runner: CommandRunner,
    profile: str,
    *,
    to: Generation | None,
    failed: int | None = None,
    action: str = "switch",
    env: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_ACTIVATE_TIMEOUT,
    systemd: bool = False,
) -> RollbackOutcome:
    """Return the host to generation ``to`` and re-activate it with ``action``.

    ``action`` is the one the failed step used: ``switch`` and ``boot`` point
    the profile back at ``to`` (and drop the ``failed`` generation, as
    deploy-rs does, so a later ``--rollback`` never lands on it); ``test``
    left the profile alone and only re-activates what it holds. ``systemd``:
    re-activate under systemd-run, in a unit of its own.
    """
    if to is None:
        return RollbackOutcome(False, message="no previous generation to roll back to")
    try:
        if action in ("switch", "boot"):
            await switch_generation(runner, profile, to.number, timeout=QUICK_TIMEOUT)
            if failed is not None and failed != to.number:
                # a leftover generation is untidy, not unsafe
                with contextlib.suppress(NixOpError):
                    await delete_generation(runner, profile, failed, timeout=QUICK_TIMEOUT)
        unit = activation_unit_name() if systemd else None
        res = await switch_to_configuration(
            runner, to.path, action, env=env, timeout=timeout, unit=unit
        )
    except NixOpError as exc:
        return RollbackOutcome(False, to.number, to.path, f"rollback failed: {exc.message}")
    if res.rc != 0:
        what = _fail(f"re-activating generation {to.number}", res).message
        return RollbackOutcome(False, to.number, to.path, f"rollback incomplete: {what}")
    return RollbackOutcome(True, to.number, to.path, f"rolled back to generation {to.number}")


# -- deployment records ------------------------------------------------------

RECORD_SCRIPT = (
    'f=$1; shift; mkdir -p -- "$(dirname -- "$f")" && '
    'printf "%s\\t%s\\t%s\\t%s\\t%s\\n" "$@" >> "$f"'
)


def state_dir_for(profile: str, state_dir: str | None) -> str:
    """Where deployment records and canaries live: ``state_dir`` or beside the profile."""
    if state_dir:
        return state_dir.rstrip("/") or "/"
    return posixpath.join(posixpath.dirname(profile), ".hlplay")


def record_file(profile: str, state_dir: str | None) -> str:
    return posixpath.join(state_dir_for(profile, state_dir), posixpath.basename(profile) + ".log")


async def record_deployment(runner: CommandRunner, file: str, dep: Deployment) -> None:
    fields = [
        f"{dep.time:.0f}",
        str(dep.generation),
        dep.path,
        dep.revision,
        dep.action,
    ]
    if any(c in f for f in fields for c in "\t\n"):
        raise NixOpError("deployment record fields must not contain tabs or newlines")
    res = await runner(["sh", "-c", RECORD_SCRIPT, "hlplay-record", file, *fields], QUICK_TIMEOUT)
    if res.rc != 0:
        raise _fail(f"recording the deployment in {file}", res)


async def read_deployments(runner: CommandRunner, file: str) -> list[Deployment]:
    res = await runner(["tail", "-n", "500", "--", file], QUICK_TIMEOUT)
    if res.rc != 0:
        return []
    out = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[1].isdigit():
            continue
        try:
            stamp = float(parts[0])
        except ValueError:
            continue
        out.append(Deployment(stamp, int(parts[1]), parts[2], parts[3], parts[4]))
    return out


def revision_of(deployments: Sequence[Deployment], path: str) -> str | None:
    """The revision most recently deployed as ``path``."""
    for dep in reversed(deployments):
        if dep.path == path:
            return dep.revision
    return None


# -- magic rollback: the confirmation watchdog --------------------------------

# Runs detached on the host. Whoever renames the canary first wins: the
# controller (``.confirmed``: keep the new system) or this watchdog when the
# time is up (``.expired``: roll back). The rename is atomic, so a confirmation
# arriving at the last moment never races a rollback.
WATCHDOG_SCRIPT = r"""
canary=$1 profile=$2 timeout=$3 old=$4 new=$5 action=$6 before=$7
shift 7
# Armed before the activation: the window opens when the activation returns
# (the executor then writes the deadline to $canary.until); should nobody
# ever write it (the controller or listener died mid-activation), the first
# deadline still ends the wait.
deadline=$(( $(date +%s) + before + timeout ))
while [ -e "$canary" ]; do
  if [ -r "$canary.until" ]; then
    read -r dl < "$canary.until" 2>/dev/null
    case $dl in ''|*[!0-9]*) ;; *) deadline=$dl ;; esac
  fi
  if [ "$(date +%s)" -gt "$deadline" ]; then
    if mv -- "$canary" "$canary.expired" 2>/dev/null; then
      rm -f -- "$canary.until"
      {
        echo "no confirmation within ${timeout}s"
        if [ -z "$old" ]; then
          echo "rollback: no previous generation"
          exit 0
        fi
        if [ "$action" = switch ] || [ "$action" = boot ]; then
          nix-env -p "$profile" --switch-generation "$old" || { echo "rollback: failed"; exit 0; }
          [ -n "$new" ] && [ "$new" != "$old" ] && nix-env -p "$profile" --delete-generations "$new"
        fi
        if env "$@" "$profile/bin/switch-to-configuration" "$action"; then
          echo "rollback: ok generation $old"
        else
          echo "rollback: activation failed generation $old"
        fi
      } >> "$canary.expired" 2>&1
    fi
    exit 0
  fi
  sleep 0.2 2>/dev/null || sleep 1
done
rm -f -- "$canary.confirmed" "$canary.until"
"""

# The canary holds "<old> <new> <action>", what a rollback needs.
LAUNCH_SCRIPT = (
    'w=$1; shift; printf "%s %s %s\\n" "$4" "$5" "$6" > "$1" || exit 1; '
    "if command -v setsid >/dev/null 2>&1; then "
    'setsid sh -c "$w" hlplay-watchdog "$@" </dev/null >/dev/null 2>&1 & '
    'else sh -c "$w" hlplay-watchdog "$@" </dev/null >/dev/null 2>&1 & fi; '
    "echo $!"
)

CONFIRM_SCRIPT = (
    'if mv -- "$1" "$1.confirmed" 2>/dev/null; then exit 0; fi; '
    'if [ -e "$1.expired" ]; then cat -- "$1.expired"; rm -f -- "$1.expired"; exit 3; fi; '
    "exit 4"
)


def canary_path(profile: str, state_dir: str | None, request_id: str) -> str:
    """The canary file of one request; any id the protocol allows names one.

    An id that is not a safe file name (``a.b``, ``x/y``) is hashed, the same
    way every time, so that confirming it finds the canary its deploy armed.
    """
    if not isinstance(request_id, str) or not request_id:
        raise NixOpError(f"invalid request id {request_id!r}")
    name = request_id
    if not REQUEST_ID_RE.fullmatch(request_id):
        import hashlib

        name = "h" + hashlib.sha256(request_id.encode()).hexdigest()[:40]
    return posixpath.join(state_dir_for(profile, state_dir), f"canary-{name}")


#: Writes the canary when the watchdog runs in a transient unit of its own.
CANARY_SCRIPT = 'printf "%s %s %s\\n" "$2" "$3" "$4" > "$1"'
WATCHDOG_UNIT_PREFIX = "hlplay-watchdog-"
#: Variables the watchdog's unit takes from the caller by name: the listener's
#: PATH (the unit's own would hold neither nix-env nor coreutils on every host)
#: and what the activation under systemd-run forwards as well.
WATCHDOG_PASS_ENV = ("PATH", "LOCALE_ARCHIVE")


def watchdog_unit_name(unique: str | None = None) -> str:
    """A transient unit name for one watchdog: ``hlplay-watchdog-<random>``."""
    return transient_unit_name(WATCHDOG_UNIT_PREFIX, unique)


def watchdog_unit_argv(
    unit: str, args: Sequence[str], env: Mapping[str, str] | None = None
) -> list[str]:
    """``systemd-run`` starting the watchdog script in the transient service ``unit``.

    No ``--pipe`` nor ``--wait``: systemd-run returns once the unit started.
    The activation environment goes to the unit as ``-E K=V``.
    """
    if not UNIT_RE.fullmatch(unit):
        raise NixOpError(f"invalid unit name {unit!r}")
    given = env_prefix(env)[1:]  # validated K=V
    named = {kv.split("=", 1)[0] for kv in given}
    argv = ["systemd-run", "--collect", "--no-ask-password", "--quiet", f"--unit={unit}"]
    for name in WATCHDOG_PASS_ENV:
        if name not in named:
            argv += ["-E", name]
    for kv in given:
        argv += ["-E", kv]
    return [*argv, "sh", "-c", WATCHDOG_SCRIPT, "hlplay-watchdog", *args]


async def arm_watchdog(
    runner: CommandRunner,
    *,
    canary: str,
    profile: str,
    timeout: float,
    old: Generation | None,
    new: Generation | None,
    action: str,
    env: Mapping[str, str] | None = None,
    systemd: bool | None = None,
    unit: str | None = None,
    before: float = 0.0,
) -> str | None:
    """Create the canary and start the detached watchdog on the host.

    ``before``: seconds the activation may still take, when the watchdog is
    armed ahead of it; :func:`open_window` then starts the ``timeout`` window
    once the activation returned.

    On a host running systemd (``systemd``; None: ask the host) the watchdog
    runs in a transient unit (``unit``, default ``hlplay-watchdog-<random>``)
    started with ``systemd-run``: outside the caller's cgroup, so stopping
    the listener's service (``KillMode``) or an SSH session's scope does not
    take it down. Elsewhere ``setsid`` detaches it. Either way the launcher
    returns at once (an SSH channel closes). Returns the unit's name, if any.
    """
    check_profile(profile)
    if action not in ("switch", "test", "boot"):
        raise NixOpError(f"no watchdog for action {action!r}")
    env_args = env_prefix(env)[1:]
    mk = await runner(["mkdir", "-p", "--", posixpath.dirname(canary)], QUICK_TIMEOUT)
    if mk.rc != 0:
        raise _fail("creating the state directory", mk)
    args = [
        canary, profile, str(max(1, round(timeout))),
        str(old.number) if old else "", str(new.number) if new else "", action,
        str(max(0, round(before))),
    ]  # fmt: skip
    if systemd is None:
        systemd = await has_systemd(runner)
    if not systemd:
        res = await runner(
            ["sh", "-c", LAUNCH_SCRIPT, "hlplay-launch", WATCHDOG_SCRIPT, *args, *env_args],
            QUICK_TIMEOUT,
        )
        if res.rc != 0:
            raise _fail("arming the confirmation watchdog", res)
        return None
    unit = unit or watchdog_unit_name()
    argv = watchdog_unit_argv(unit, args, env)
    res = await runner(
        ["sh", "-c", CANARY_SCRIPT, "hlplay-canary", canary, *args[3:]], QUICK_TIMEOUT
    )
    if res.rc != 0:
        raise _fail("arming the confirmation watchdog", res)
    res = await runner(argv, QUICK_TIMEOUT)
    if res.rc != 0:
        # no watchdog guards it: a confirmation must not find the canary
        await runner(["rm", "-f", "--", canary], QUICK_TIMEOUT)
        raise _fail(f"starting the confirmation watchdog in {unit}", res)
    return unit


WINDOW_SCRIPT = 'test -e "$1" && echo $(( $(date +%s) + $2 )) > "$1.until"'


async def open_window(runner: CommandRunner, canary: str, timeout: float) -> bool:
    """Start the confirmation window now: the watchdog rolls back ``timeout`` s from here.

    The deadline is computed by the host's own clock. False when the canary
    is gone already (the watchdog acted, or someone claimed it).
    """
    res = await runner(
        ["sh", "-c", WINDOW_SCRIPT, "hlplay-window", canary, str(max(1, round(timeout)))],
        QUICK_TIMEOUT,
    )
    return res.rc == 0


@dataclass
class ConfirmOutcome:
    confirmed: bool
    message: str = ""
    rolled_back: bool = False
    rollback_ok: bool | None = None


async def confirm_canary(runner: CommandRunner, canary: str) -> ConfirmOutcome:
    """Confirm by renaming the canary; tells whether the host had already rolled back."""
    res = await runner(["sh", "-c", CONFIRM_SCRIPT, "hlplay-confirm", canary], QUICK_TIMEOUT)
    if res.rc == 0:
        return ConfirmOutcome(True, "confirmed")
    if res.rc == 3:
        text = res.stdout.strip()
        ok = "rollback: ok" in text
        lines = " | ".join(t for t in text.splitlines() if t.strip())
        return ConfirmOutcome(False, lines, rolled_back="rollback:" in text, rollback_ok=ok)
    if res.rc == 4:
        return ConfirmOutcome(False, "no confirmation is pending (unknown request id)")
    return ConfirmOutcome(False, _fail("confirming", res).message)


CLAIM_SCRIPT = (
    'if mv -- "$1" "$1.rejected" 2>/dev/null; then cat -- "$1.rejected"; '
    'rm -f -- "$1.rejected"; exit 0; fi; '
    'if [ -e "$1.expired" ]; then cat -- "$1.expired"; rm -f -- "$1.expired"; exit 3; fi; '
    "exit 4"
)


@dataclass
class ClaimOutcome:
    """The controller took the canary away from the watchdog to roll back at once."""

    claimed: bool
    old: int | None = None
    new: int | None = None
    action: str = "switch"
    message: str = ""  # when not claimed: what the watchdog did, or why not


async def claim_canary(runner: CommandRunner, canary: str) -> ClaimOutcome:
    """Take the canary (the watchdog then stands down) and read what it guarded."""
    res = await runner(["sh", "-c", CLAIM_SCRIPT, "hlplay-claim", canary], QUICK_TIMEOUT)
    if res.rc == 0:
        fields = res.stdout.split()
        nums = [int(f) if f.isdigit() else None for f in fields[:2]]
        old, new = [*nums, None, None][:2]
        action = fields[2] if len(fields) > 2 and fields[2] in ACTIVATE_ACTIONS else "switch"
        return ClaimOutcome(True, old, new, action)
    if res.rc == 3:
        text = " | ".join(t for t in res.stdout.strip().splitlines() if t.strip())
        return ClaimOutcome(False, message=f"the host had already acted: {text}")
    if res.rc == 4:
        return ClaimOutcome(False, message="no confirmation is pending (unknown request id)")
    return ClaimOutcome(False, message=_fail("claiming the canary", res).message)


# -- pruning -------------------------------------------------------------------

#: How many generations a profile keeps unless the host says otherwise.
DEFAULT_KEEP_GENERATIONS = 10
#: The system the host booted (NixOS links it at boot; gone on other hosts).
BOOTED_SYSTEM = "/run/booted-system"


async def prune_generations(
    runner: CommandRunner,
    profile: str,
    keep: int,
    *,
    protect: Sequence[str] = (),
    timeout: float | None = QUICK_TIMEOUT,
) -> list[int]:
    """Delete the generations of ``profile`` older than its newest ``keep``; the numbers deleted.

    Never the current generation, nor any whose store path is in ``protect``
    (the booted and the running system): a link deleted is a system the next
    garbage collection may take. ``keep`` is at least 2, so that the
    generation a rollback returns to is always among the kept.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise NixOpError(f"keep_generations must be a whole number of at least 2, got {keep!r}")
    gens = sorted(await list_generations(runner, profile, timeout=timeout), key=lambda g: g.number)
    kept = {g.number for g in gens[-keep:]}
    doomed = [
        g.number for g in gens if g.number not in kept and not g.current and g.path not in protect
    ]
    if not doomed:
        return []
    res = await runner(
        ["nix-env", "-p", profile, "--delete-generations", *map(str, doomed)], timeout
    )
    if res.rc != 0:
        raise _fail(f"deleting generations {', '.join(map(str, doomed))} of {profile}", res)
    return doomed
