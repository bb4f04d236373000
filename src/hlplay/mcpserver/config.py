"""What ``hlplay mcp`` is started with, checked once at start-up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hlplay.errors import OptionsError, did_you_mean

DEPLOY_PLAYBOOK = "deploy-all.yml"
DEFAULT_DEPLOY_TIERS = ("test",)


@dataclass(frozen=True)
class ServerConfig:
    """The server's inventory, credentials and limits.

    ``test_credentials`` and ``admin_credentials`` are NKey seed files
    (absolute paths). ``deploy_tiers`` are the tiers the ``deploy`` tool may
    reach with the test credentials; ``deploy_admin`` may reach any tier.
    """

    inventory: tuple[str, ...]
    test_credentials: Path | None = None
    admin_credentials: Path | None = None
    deploy_tiers: tuple[str, ...] = DEFAULT_DEPLOY_TIERS
    playbook: Path | None = None  # None: look for playbooks/deploy-all.yml
    timeout: float = 900.0  # seconds for a diff's builds


def seed_path(value: str | None, what: str) -> Path | None:
    """An absolute path to a readable NKey seed file, or None; raises on a bad one."""
    if not value:
        return None
    from hlplay.auth.keys import KeyFileError, public_key_of, read_seed

    path = Path(value).expanduser()
    try:
        seed = read_seed(path)
    except KeyFileError as exc:
        raise OptionsError(f"{what}: {exc.message}") from None
    try:
        # a seed that only looks right would fail at the first tool call
        public_key_of(seed)
    except KeyFileError as exc:
        raise OptionsError(f"{what}: {value}: {exc.message}") from None
    return path.resolve()


def check_tiers(tiers: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """The ``--allow-tier`` values, each a tier of the inventory."""
    out: list[str] = []
    for tier in tiers:
        if tier not in known:
            raise OptionsError(
                f"--allow-tier {tier}: no host of the inventory is in tier '{tier}'"
                f"{did_you_mean(tier, known)}"
            )
        if tier not in out:
            out.append(tier)
    return tuple(out)


def find_playbook(config: ServerConfig, sources: Sequence[str]) -> Path:
    """The deploy playbook: ``--playbook``, else ``playbooks/deploy-all.yml`` next to
    the inventory (or a directory above it), in the current directory, or in
    hlplay's own source tree."""
    if config.playbook is not None:
        if not config.playbook.is_file():
            raise OptionsError(f"deploy playbook {config.playbook} not found")
        return config.playbook
    looked: list[Path] = []
    for src in sources:
        base = Path(src).resolve()
        base = base if base.is_dir() else base.parent
        looked += [d / "playbooks" for d in (base, *list(base.parents)[:3])]
    looked.append(Path.cwd() / "playbooks")
    looked.append(Path(__file__).resolve().parents[3] / "playbooks")
    for directory in dict.fromkeys(looked):
        candidate = directory / DEPLOY_PLAYBOOK
        if candidate.is_file():
            return candidate
    raise OptionsError(
        f"no playbooks/{DEPLOY_PLAYBOOK} found next to the inventory or in the current "
        "directory; start hlplay mcp with --playbook PATH"
    )
