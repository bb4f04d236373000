"""The lab's configuration flake: copied from the shipped template into a git repo.

``hlplay lab up`` makes two commits: the fleet *as provisioned* (deployed to
every lab host at start-up, with its ``flake.lock``) and one pending change on
top (nginx-lite bumped), so the first ``deploy-all`` has a real closure diff to
show.

Next to the repository it puts ``upstream/``, a package set the flake follows
through a ``path:`` input (as a real configuration follows nixpkgs). Changing a
version there and running ``playbooks/flake-update.yml`` moves that input.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from hlplay.errors import HlplayError
from hlplay.gitrepo import GIT_ENV

PACKAGES_FILE = "pkgs/default.nix"
UPSTREAM_FILE = "default.nix"
UPSTREAM_PLACEHOLDER = "@UPSTREAM@"
# Flakes on, and no binary cache: locking a path: input must not wait on DNS.
NIX_FLAGS = ("--extra-experimental-features", "nix-command flakes", "--option", "substituters", "")
PENDING_CHANGE = ("nginx-lite", "1.25.3")
VERSION_RE = r'({pname} = lib\.mkPackage \{{ pname = "{pname}"; version = ")([^"]+)(")'
UPSTREAM_VERSION_RE = r'({pname} = mkPackage \{{ pname = "{pname}"; version = ")([^"]+)(")'


def template_dir() -> Path:
    return Path(str(resources.files("hlplay") / "data" / "lab" / "config"))


def upstream_template_dir() -> Path:
    return Path(str(resources.files("hlplay") / "data" / "lab" / "upstream"))


def upstream_dir(repo: Path) -> Path:
    """The upstream package set of the lab whose configuration repo is ``repo``."""
    return repo.parent / "upstream"


def _git(repo: Path, *args: str) -> str:
    import os

    env = dict(os.environ)
    env.update(GIT_ENV)
    res = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    if res.returncode != 0:
        raise HlplayError(f"git {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def current_system() -> str:
    res = subprocess.run(
        ["nix-instantiate", "--eval", "--expr", "builtins.currentSystem"],
        capture_output=True,
        text=True,
        check=False,
    )
    out = res.stdout.strip().strip('"')
    return out or "x86_64-linux"


def _set_version(path: Path, version_re: str, pname: str, version: str) -> str:
    """Rewrite one package's version string in ``path``; return the old version."""
    text = path.read_text()
    pattern = re.compile(version_re.format(pname=re.escape(pname)))
    match = pattern.search(text)
    if match is None:
        names = re.findall(r'pname = "([^"]+)"', text)
        raise HlplayError(
            f"{path}: no package '{pname}' with a version here (packages: {', '.join(names)})"
        )
    path.write_text(pattern.sub(lambda m: m.group(1) + version + m.group(3), text, count=1))
    return match.group(2)


def set_version(repo: Path, pname: str, version: str) -> str:
    """Change a toy package's version in pkgs/default.nix; return the old version."""
    return _set_version(repo / PACKAGES_FILE, VERSION_RE, pname, version)


def bump_upstream(repo: Path, pname: str, version: str) -> str:
    """Change a package's version in the lab's upstream package set; return the old one.

    Nothing is committed: the configuration sees the change once its lock
    moves (``nix flake update``, or ``playbooks/flake-update.yml``).
    """
    return _set_version(upstream_dir(repo) / UPSTREAM_FILE, UPSTREAM_VERSION_RE, pname, version)


def lock(repo: Path) -> None:
    """Write the flake's lock file (``nix flake lock``)."""
    res = subprocess.run(
        ["nix", *NIX_FLAGS, "flake", "lock", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise HlplayError(f"nix flake lock {repo} failed: {res.stderr.strip()}")


def bump(repo: Path, pname: str, version: str) -> str:
    """Bump a package and commit; return the new commit id."""
    from hlplay.nix.pkgedit import VERSION_RE as SAFE_VERSION

    # the version lands inside a Nix string: nothing that could end it
    if not SAFE_VERSION.fullmatch(version):
        raise HlplayError(
            f"invalid version {version!r}: letters, digits and . _ + ~ - only"
            " (starting with a letter or digit, at most 64 characters)"
        )
    if not (repo / PACKAGES_FILE).is_file():
        raise HlplayError(
            f"the lab's configuration is not there yet ({repo}): bring the lab up first"
            " (hlplay lab up)"
        )
    old = set_version(repo, pname, version)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"{pname}: {old} -> {version}")
    return _git(repo, "rev-parse", "HEAD")


def create(repo: Path, *, pending_change: bool = True) -> tuple[str, str]:
    """Create the config repo; return (provisioned commit, head commit)."""
    if (repo / ".git").exists():
        provisioned = _git(repo, "rev-list", "--max-parents=0", "HEAD").splitlines()[0]
        return provisioned, _git(repo, "rev-parse", "HEAD")
    shutil.copytree(template_dir(), repo, dirs_exist_ok=True)
    upstream = upstream_dir(repo).resolve()
    if not upstream.exists():
        shutil.copytree(upstream_template_dir(), upstream)
    flake = repo / "flake.nix"
    flake.write_text(flake.read_text().replace(UPSTREAM_PLACEHOLDER, str(upstream)))
    (repo / "system.nix").write_text(f'"{current_system()}"\n')
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    lock(repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "lab: the fleet as provisioned")
    provisioned = _git(repo, "rev-parse", "HEAD")
    head = provisioned
    if pending_change:
        head = bump(repo, *PENDING_CHANGE)
    return provisioned, head
