"""Flake references: a configuration flake plus a revision, and attribute paths.

``flake_ref("/srv/config", "main")`` gives ``git+file:///srv/config?ref=main``;
a full commit id gives ``?rev=<id>``; ``HEAD`` (or no revision) leaves the
flake as it is, so Nix takes the repository's checked-out commit. Revisions are
checked with :func:`hlplay.protocol.messages.validate_revision` first, so a
request cannot smuggle URL syntax (``&``, ``#``, ``?``) into the reference.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote

from hlplay.protocol.messages import ProtocolError, validate_revision

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Flake URL schemes whose fetchers accept ?ref= and ?rev=.
GIT_SCHEMES = ("git+", "github:", "gitlab:", "sourcehut:")
# An attribute name Nix accepts unquoted on the command line.
PLAIN_ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
HEAD_NAMES = frozenset({"HEAD", "head", "@"})


class FlakeRefError(ValueError):
    """A flake URL or revision that cannot be used."""


def is_commit(revision: str) -> bool:
    return bool(COMMIT_RE.fullmatch(revision))


def normalize_flake(flake: str, *, base: str | None = None) -> str:
    """A flake given as a local path becomes ``git+file://<absolute path>``.

    URLs (anything with a scheme: ``git+https://…``, ``github:…``, ``path:…``)
    are returned unchanged. ``base`` anchors relative paths (default: the
    current directory).
    """
    if not flake or any(c in flake for c in "\n\r\t\0 "):
        raise FlakeRefError(f"invalid flake reference {flake!r}")
    if _has_scheme(flake):
        return flake
    path = flake
    if not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base or os.getcwd(), path))
    return "git+file://" + quote(path, safe="/._-+@~")


def flake_ref(flake: str, revision: str | None, *, base: str | None = None) -> str:
    """The flake URL pinned to ``revision`` (validated): ``…?ref=NAME`` or ``…?rev=ID``."""
    url = normalize_flake(flake, base=base)
    if revision is None or revision in HEAD_NAMES:
        return url
    try:
        validate_revision(revision)
    except ProtocolError as exc:
        raise FlakeRefError(f"invalid revision {revision!r}: {exc.message}") from None
    if not url.startswith(GIT_SCHEMES):
        # path: and tarball flakes have no revisions: the caller's revision is
        # recorded but cannot select anything.
        return url
    if "#" in url:
        raise FlakeRefError(f"flake reference {url!r} must not contain an attribute ('#')")
    key = "rev" if is_commit(revision) else "ref"
    sep = "&" if "?" in url else "?"
    if re.search(r"[?&](ref|rev)=", url):
        raise FlakeRefError(f"flake reference {url!r} already pins a ref or rev")
    return f"{url}{sep}{key}={quote(revision, safe='/._-+@')}"


def attr_path(template: str, host: str) -> str:
    """Expand ``{host}`` in an attribute path, quoting the host name if Nix needs it."""
    if not host or any(c in host for c in '"\\$\n\r\0'):
        raise FlakeRefError(f"invalid host name for an attribute path: {host!r}")
    name = host if PLAIN_ATTR_RE.fullmatch(host) else f'"{host}"'
    attr = template.replace("{host}", name)
    if not attr or attr.startswith(".") or attr.endswith(".") or any(c in attr for c in "#? \n"):
        raise FlakeRefError(f"invalid attribute path {attr!r}")
    return attr


def installable(flake: str, revision: str | None, template: str, host: str) -> str:
    """``<flake>?ref=<rev>#<attr>``, the argument ``nix build`` takes."""
    return f"{flake_ref(flake, revision)}#{attr_path(template, host)}"


def local_repo(flake: str) -> str | None:
    """The directory of a flake that is a local git repository or path, else None."""
    if not _has_scheme(flake):
        return os.path.abspath(flake)
    for prefix in ("git+file://", "path:", "git+file:"):
        if flake.startswith(prefix):
            rest = flake[len(prefix) :].split("?", 1)[0].split("#", 1)[0]
            return unquote(rest) or None
    return None


def controller_checkout(flake: str) -> str | None:
    """The controller's directory or file a flake reads, or None for a fetchable URL.

    Such a flake (a plain path, ``git+file:``, ``path:``, ``file:``) exists
    only where the controller runs: another machine cannot build from it.
    """
    repo = local_repo(flake)
    if repo is not None:
        return repo
    if flake.startswith(("file:", "tarball+file:")):
        rest = flake.split(":", 1)[1].removeprefix("//").split("?", 1)[0].split("#", 1)[0]
        return unquote(rest) or None
    return None


def _has_scheme(flake: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", flake)) and not flake.startswith("./")
