"""``hlplay keys new``: NKey seeds a user can hand to a listener or a deployer."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from hlplay.auth.keys import find_public_key, is_user_public_key, new_seed, public_key_of
from hlplay.cli.main import cli


def test_keys_new_writes_a_private_seed_and_prints_the_public_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "web1", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    public = result.output.strip()
    assert is_user_public_key(public)
    seed = tmp_path / "web1.seed"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert seed.read_text().startswith("SU")
    assert public_key_of(seed.read_text()) == public
    assert (tmp_path / "web1.pub").read_text().strip() == public
    assert find_public_key("web1", tmp_path) == public


def test_keys_new_never_overwrites_silently(tmp_path: Path) -> None:
    first = new_seed(tmp_path / "admin.seed")
    result = CliRunner().invoke(cli, ["keys", "new", "admin", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "refusing to overwrite" in str(result.exception or result.output)
    assert find_public_key("admin", tmp_path) == first


def test_key_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "../evil", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert not (tmp_path.parent / "evil.seed").exists()


def test_public_keys_are_checked_not_just_shaped() -> None:
    from hlplay.auth.keys import generate

    _, public = generate()
    broken = public[:-1] + ("A" if public[-1] != "A" else "B")
    assert is_user_public_key(public)
    assert not is_user_public_key(broken)
    assert not is_user_public_key("N" + public[1:])
