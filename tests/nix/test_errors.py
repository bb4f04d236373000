"""Nix's whole error reaches the user: the error line, its position in the checkout."""

from __future__ import annotations

import asyncio
import subprocess

from fixtures.nix import NixTestFlake, nix_system
from hlplay.nix import errors
from hlplay.transports.local import LocalTransport

FLAKE = """{
  outputs = { self }: {
    nixosConfigurations.web1.config.system.build.toplevel = import ./broken.nix;
  };
}
"""

SYNTAX = "let\n  x = 1;\n  y = { a = 1; }};\nin y\n"
MISSING = "let\n  pkgs = { };\n  y = pkgs.pgbouncer-lite;\nin y\n"


def failing_builder() -> str:
    return (
        f'derivation {{ name = "bad"; system = "{nix_system()}"; builder = "/bin/sh";\n'
        '  args = [ "-c" "echo the builder broke >&2; exit 3" ]; }\n'
    )


def broken(flake: NixTestFlake, source: str) -> str:
    (flake.root / "flake.nix").write_text(FLAKE)
    (flake.root / "broken.nix").write_text(source)
    return flake.commit("break web1")


def nix_stderr(flake: NixTestFlake) -> str:
    attr = "nixosConfigurations.web1.config.system.build.toplevel"
    proc = subprocess.run(
        ["nix", "build", "--json", "--no-link", f"{flake.url}#{attr}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    return proc.stderr


def test_syntax_error_names_the_line_and_the_repository_file(nix_flake: NixTestFlake) -> None:
    broken(nix_flake, SYNTAX)
    raw = nix_stderr(nix_flake)
    detail = errors.detail(raw, str(nix_flake.root))
    assert detail.startswith("error: syntax error, unexpected '}'")
    assert "at broken.nix:3:" in detail and "/nix/store/" not in detail
    assert "3|   y = { a = 1; }};" in detail  # the code excerpt stays
    line = errors.summary(detail)
    assert line.startswith("syntax error, unexpected '}'") and "broken.nix:3:" in line


def test_missing_attribute(nix_flake: NixTestFlake) -> None:
    broken(nix_flake, MISSING)
    detail = errors.detail(nix_stderr(nix_flake), str(nix_flake.root))
    assert "error: attribute 'pgbouncer-lite' missing" in detail
    assert "broken.nix:3:" in detail and "--show-trace" not in detail


def test_failing_builder_keeps_the_error_and_the_builders_words(nix_flake: NixTestFlake) -> None:
    broken(nix_flake, failing_builder())
    detail = errors.detail(nix_stderr(nix_flake), str(nix_flake.root))
    assert "error: builder for" in detail and "failed with exit code 3" in detail
    assert "the builder broke" in detail


def test_paths_outside_the_checkout_stay_store_paths(tmp_path: object) -> None:
    text = "at /nix/store/" + "a" * 32 + "-source/nowhere.nix:1:2:"
    assert errors.map_source_paths(text, "/nonexistent") == text


def test_no_error_line_falls_back_to_the_last_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(10))
    assert errors.nix_error(text) == "\n".join(f"line {i}" for i in range(5, 10))


def test_a_long_trace_keeps_its_ends_and_says_what_it_skipped() -> None:
    frames = [f"       … while calling f{i}\n\n       at /x.nix:{i}:1:" for i in range(20)]
    text = "warning: Git tree '/r' is dirty\nerror: boom\n" + "\n".join(frames)
    out = errors.nix_error(text)
    assert out.startswith("error: boom") and "dirty" not in out
    assert "f0" in out and "f19" in out and "f10" not in out
    assert "16 more frames skipped" in out


def test_a_deploy_reports_the_error_in_its_outcome(nix_flake: NixTestFlake) -> None:
    nix_flake.set_host("web1", {"hello": "1.0"})
    rev = broken(nix_flake, SYNTAX)
    inv = nix_flake.inventory(["web1"])
    out = asyncio.run(
        LocalTransport(inv).deploy(
            [inv.hosts["web1"]], {"action": "switch", "revision": rev, "id": "e1"}
        )
    )["web1"]
    assert out.status == "failed", out
    assert "syntax error, unexpected '}'" in out.message and "broken.nix:3:" in out.message
    assert "/nix/store/" not in out.message.split("failed (exit")[1]
    detail = out.data["error_detail"]
    assert detail.startswith("error: syntax error") and "3|   y = { a = 1; }};" in detail
