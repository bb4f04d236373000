"""The parser copes with the whole Nix syntax; broken files are one finding each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import realparts
from hlplay.audit import Severity, audit, audit_source

FIXTURES = Path(__file__).parent / "fixtures"
SYNTAX = sorted((FIXTURES / "syntax").glob("*.nix"))

# Each form the parser must cope with, and a fixture file that writes it.
FORMS = {
    "let/in": ("let-in.nix", "let\n"),
    "let in a list": ("let-in.nix", "[ (let z = 3; in z)"),
    "rec": ("attrsets.nix", "rec {"),
    "with": ("operators.nix", "with a;"),
    "inherit": ("attrsets.nix", "inherit name;"),
    "inherit-from": ("attrsets.nix", "inherit (base) x y;"),
    "interpolation": ("strings.nix", '"hello ${who}'),
    "indented string": ("strings.nix", "indented = ''"),
    "indented escape ''${": ("strings.nix", "''${who}"),
    "path": ("paths.nix", "./a/b.nix"),
    "home path": ("paths.nix", "~/projects"),
    "search path": ("paths.nix", "<nixpkgs>"),
    "lambda @-pattern with defaults": ("functions.nix", "{ a ? 1, ... }@args:"),
    "pattern with trailing comma": ("functions.nix", "{ a, b, }:"),
    "or": ("operators.nix", 'a.missing or "default"'),
    "assert": ("operators.nix", "assert t;"),
    "if/then/else": ("operators.nix", "if x > 0 then"),
    "//": ("operators.nix", "a // {"),
    "++": ("operators.nix", "[ 1 ] ++ [ 2 3 ]"),
    "?": ("operators.nix", "a ? y.z"),
    "->": ("operators.nix", "f -> t"),
    "URI": ("paths.nix", "https://example.org/archive.tar.gz"),
    "float": ("numbers.nix", "3.14"),
    "builtins call": ("builtins.nix", "builtins.filter"),
    "line comment": ("comments.nix", "# a line comment"),
    "block comment": ("comments.nix", "/* inline block */"),
    "legacy let { }": ("old-let.nix", "let {"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_syntax_form_has_a_fixture(form: str) -> None:
    name, snippet = FORMS[form]
    assert snippet in (FIXTURES / "syntax" / name).read_text()


@pytest.mark.parametrize("path", SYNTAX, ids=lambda p: p.name)
def test_syntax_fixture_parses_without_error(path: Path) -> None:
    findings = audit_source(path.read_bytes(), path.name)
    assert [f for f in findings if f.rule == "parse-error"] == []


def test_syntax_fixtures_are_valid_nix_for_nix_itself() -> None:
    nix = shutil.which("nix-instantiate")
    realparts.require(nix, "nix-instantiate")
    assert nix is not None
    for path in SYNTAX:
        proc = subprocess.run([nix, "--parse", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path.name}: {proc.stderr}"


def test_syntax_error_is_one_finding_at_the_error() -> None:
    src = b"{ config, ... }:\n{\n  services.nginx = {\n    enable = true\n  };\n}\n"
    findings = audit_source(src, "broken.nix")
    assert len(findings) == 1
    f = findings[0]
    assert (f.rule, f.line, f.column, f.severity) == ("parse-error", 4, 18, Severity.HIGH)
    assert "missing ';'" in f.message


def test_unexpected_token_is_reported_with_its_text() -> None:
    findings = audit_source(b"{ a = 1; }}\n", "x.nix")
    assert [(f.rule, f.line, f.column) for f in findings] == [("parse-error", 1, 11)]
    assert "unexpected '}'" in findings[0].message


def test_broken_file_hides_nothing_else_and_other_files_still_audited(tmp_path: Path) -> None:
    (tmp_path / "broken.nix").write_text("{ networking.firewall.enable = false; \n")
    (tmp_path / "ok.nix").write_text("{ networking.firewall.enable = false; }\n")
    report = audit([tmp_path])
    assert [(Path(f.file).name, f.rule) for f in report.findings] == [
        ("broken.nix", "parse-error"),
        ("ok.nix", "firewall-disabled"),
    ]


def test_non_utf8_file_is_one_finding(tmp_path: Path) -> None:
    path = tmp_path / "latin1.nix"
    path.write_bytes(b'{\n  motd = "caf\xe9";\n}\n')
    findings = audit([path]).findings
    assert [(f.rule, f.line, f.column) for f in findings] == [("parse-error", 2, 14)]
    assert "UTF-8" in findings[0].message


def test_empty_file_is_a_parse_error() -> None:
    findings = audit_source(b"# nothing but a comment\n", "empty.nix")
    assert [f.rule for f in findings] == ["parse-error"]


def test_columns_count_characters_not_bytes() -> None:
    src = '{ motd = "héllo wörld"; x.password = "pw"; }\n'.encode()
    (f,) = audit_source(src, "u.nix")
    assert f.rule == "plaintext-secret"
    assert f.column == src.decode().index("x.password") + 1


def test_cli_and_audit_package_import_without_tree_sitter() -> None:
    code = (
        "import sys, hlplay.cli.audit_cmd, hlplay.audit, hlplay.modules.audit; "
        "print('tree_sitter' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "src",
    [
        "{ a = " + " + ".join(["1"] * 5000) + "; }",
        "{ a = " + "[ " * 3000 + "1" + " ]" * 3000 + "; }",
        "{ " + "a = { " * 2000 + "b = 1;" + " };" * 2000 + " }",
        "{ a = import (" + " + ".join(["x"] * 5000) + "); }",
        "{ a = " + "( " * 3000 + "f" + " )" * 3000 + " 1; }",
    ],
    ids=["long-sum", "deep-lists", "deep-sets", "long-import-path", "deep-parens"],
)
def test_deeply_nested_files_are_audited_without_crashing(src: str) -> None:
    assert audit_source(src.encode(), "deep.nix") == []


def test_deeply_nested_broken_file_is_one_finding() -> None:
    src = "{ a = " + "[ " * 3000 + "1" + " ]" * 2999 + "; }"
    assert [f.rule for f in audit_source(src.encode(), "deep.nix")] == ["parse-error"]


def test_walk_skips_hidden_and_linked_directories_and_dangling_links(tmp_path: Path) -> None:
    (tmp_path / "a.nix").write_text("{ }\n")
    (tmp_path / ".direnv").mkdir()
    (tmp_path / ".direnv" / "x.nix").write_text("{ broken")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "y.nix").write_text("{ }\n")
    (tmp_path / "result").symlink_to(tmp_path / "store")
    (tmp_path / "gone.nix").symlink_to(tmp_path / "missing.nix")
    (tmp_path / "notes.txt").write_text("not nix")
    report = audit([tmp_path])
    assert report.files == 2  # a.nix and store/y.nix, once
    assert audit([tmp_path, tmp_path / "a.nix"]).files == 2
    assert report.findings == []


_TOKENS = [
    "{", "}", "[", "]", "(", ")", ";", "=", ":", "@", ",", ".", "?", "//", "++", "->", "or",
    "let", "in", "rec", "with", "inherit", "assert", "if", "then", "else", '"', "''", "${",
    "#", "/*", "*/", "\n", " ", "a", "pkgs", "mkForce", "password", "mode", "0.0.0.0",
    '"0644"', "false", "true", "./p", "<nixpkgs>", "fetchurl", "import", "é", "\\",
]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_any_token_soup_gives_findings_not_exceptions(tokens: list[str]) -> None:
    src = " ".join(tokens).encode()
    findings = audit_source(src, "fuzz.nix")
    lines = src.count(b"\n") + 1
    assert sum(f.rule == "parse-error" for f in findings) <= 1
    for f in findings:
        assert 1 <= f.line <= lines and f.column >= 1


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SYNTAX), st.integers(min_value=0), st.binary(max_size=3))
def test_damaged_fixture_files_never_crash(path: Path, where: int, junk: bytes) -> None:
    src = path.read_bytes()
    cut = where % (len(src) + 1)
    damaged = src[:cut] + junk + src[cut + 1 :]
    findings = audit_source(damaged, path.name)
    assert sum(f.rule == "parse-error" for f in findings) <= 1
