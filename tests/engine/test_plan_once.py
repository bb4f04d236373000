"""A playbook run loads the playbook and selects its hosts once, not once per caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hlplay.cli.main import cli
from hlplay.engine import api


def test_the_cli_plans_a_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = tmp_path / "site.yml"
    book.write_text("- hosts: localhost\n  tasks:\n    - debug: {msg: hi}\n")
    calls: list[object] = []
    real = api.prepare_plays

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "prepare_plays", counting)
    result = CliRunner().invoke(cli, [str(book)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hi" in result.output
    assert len(calls) == 1
