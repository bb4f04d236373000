"""`hlplay audit` as CI runs it: exit status, formats, default path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hlplay.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["audit", *args])
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_clean_tree_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(FIXTURES / "clean")], capsys)
    assert code == 0
    assert out.strip() == "no findings in 5 files"


def test_findings_at_threshold_exit_two_with_text_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run([str(FIXTURES / "bad" / "hosts" / "web1.nix")], capsys)
    assert code == 2
    path = FIXTURES / "bad" / "hosts" / "web1.nix"
    assert f"{path}:8:3: high [firewall-disabled] " in out
    assert "    fix: keep the firewall on" in out
    assert out.rstrip().endswith("(5 at or above medium)")


def test_severity_option_moves_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    target = str(FIXTURES / "bad" / "pkgs" / "tool.nix")  # medium and info findings only
    assert run([target], capsys)[0] == 2
    assert run([target, "--severity", "high"], capsys)[0] == 0
    assert run([target, "--severity", "critical", "--rule", "rec-attrset"], capsys)[0] == 0
    assert run([target, "--severity", "info", "--rule", "rec-attrset"], capsys)[0] == 2


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(FIXTURES / "bad"), "--json"], capsys)
    assert code == 2
    data = json.loads(out)
    assert data["files"] == 9
    assert data["threshold"] == "medium"
    assert data["failed"] is True
    assert data["counts"]["critical"] == 2
    first = data["findings"][0]
    assert set(first) == {"file", "line", "column", "rule", "severity", "message", "hint"}
    assert sum(data["counts"].values()) == len(data["findings"])


def test_github_annotations(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.nix").write_text("{\n  networking.firewall.enable = false;\n  x = rec { };\n}\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["--format", "github"], capsys)
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith(
        "::error file=a.nix,line=2,col=3,title=firewall-disabled (high)::networking.firewall"
    )
    assert lines[1].startswith("::notice file=a.nix,line=3,col=7,title=rec-attrset (info)::")
    assert "%0A" not in lines[0] and "\n" not in lines[0]


def test_sarif_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(FIXTURES / "bad" / "flake.nix"), "--format", "sarif"], capsys)
    assert code == 2
    sarif = json.loads(out)
    run0 = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    assert [r["id"] for r in run0["tool"]["driver"]["rules"]] == ["sandbox-disabled"]
    region = run0["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 6, "startColumn": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--severity", "severe"], "unknown severity 'severe'"),
        (["--format", "xml"], "unknown format 'xml'"),
        (["--rule", "firewall"], "unknown audit rule 'firewall'"),
        (["--no-such-flag"], "No such option"),
        (["does/not/exist"], "does/not/exist: no such file or directory"),
    ],
)
def test_usage_and_io_errors_exit_one_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert "Traceback" not in err


def test_default_path_is_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.nix").write_text("{ nix.settings.sandbox = false; }\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "ignored.nix").write_text("{ broken")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run([], capsys)
    assert code == 2
    assert out.startswith("sub/x.nix:1:3: high [sandbox-disabled]")
    assert "1 file" in out


def test_default_path_is_the_inventory_flake(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "host.nix").write_text("{ networking.firewall.enable = false; }\n")
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "hosts.yml").write_text(
        "hlplay:\n  nix:\n    flake: ../config\n"
        "hosts:\n  web1:\n    tier: test\n"
    )
    monkeypatch.chdir(tmp_path / "inventory")
    code, out, err = run(["-i", str(inv / "hosts.yml")], capsys)
    assert code == 2, err
    assert "host.nix:1:3: high [firewall-disabled]" in out


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--list-rules"], capsys)
    assert code == 0
    assert "firewall-disabled" in out and "critical" in out
