"""Where the configuration repository is: the inventory's ``nix.flake`` when
it names a local directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

_LOCAL_PREFIXES = ("path:", "git+file://", "git+file:", "file://")


def local_flake_dir(flake: str, sources: Sequence[str] = ()) -> Path | None:
    """The directory a flake reference points to, or None for a remote one.

    A relative path is looked up next to each inventory source (the way the
    inventory file wrote it), then in the current directory.
    """
    ref = flake.strip()
    for prefix in _LOCAL_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    else:
        if ":" in ref.split("/", 1)[0]:
            return None  # github:owner/repo, https://…, git+ssh://…
    ref = ref.split("?", 1)[0].split("#", 1)[0]
    if not ref:
        return None
    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    for source in sources:
        base = Path(source)
        base = base if base.is_dir() else base.parent
        candidate = base / path
        if candidate.exists():
            return candidate
    return path
