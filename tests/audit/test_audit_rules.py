"""Each rule finds its problem at the right place, and leaves correct code alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlplay.audit import RULES, AuditOptions, Severity, audit, audit_source, select_rules

FIXTURES = Path(__file__).parent / "fixtures"

# Every seeded problem of fixtures/bad: (file, line, column, rule).
EXPECTED_BAD = [
    ("broken.nix", 4, 18, "parse-error"),
    ("flake.nix", 6, 3, "sandbox-disabled"),
    ("hosts/db1.nix", 6, 7, "firewall-disabled"),
    ("hosts/db1.nix", 11, 7, "ssh-password-auth"),
    ("hosts/db1.nix", 14, 9, "ssh-root-login"),
    ("hosts/db1.nix", 20, 5, "sandbox-disabled"),
    ("hosts/web1.nix", 3, 1, "top-level-with"),
    ("hosts/web1.nix", 8, 3, "firewall-disabled"),
    ("hosts/web1.nix", 12, 5, "ssh-root-login"),
    ("hosts/web1.nix", 13, 5, "ssh-password-auth"),
    ("hosts/web1.nix", 16, 3, "plaintext-secret"),
    ("hosts/web1.nix", 19, 3, "sandbox-disabled"),
    ("modules/overrides.nix", 12, 27, "mkforce-pileup"),
    ("modules/overrides.nix", 14, 9, "mkforce-duplicate"),
    ("modules/secrets.nix", 5, 5, "world-readable-secret"),
    ("modules/secrets.nix", 7, 3, "world-readable-secret"),
    ("modules/secrets.nix", 12, 5, "world-readable-secret"),
    ("modules/secrets.nix", 18, 5, "world-readable-secret"),
    ("modules/services.nix", 7, 5, "listen-all-open-port"),
    ("modules/services.nix", 8, 5, "plaintext-secret"),
    ("modules/services.nix", 11, 42, "listen-all-open-port"),
    ("modules/services.nix", 14, 43, "token-in-source"),
    ("modules/services.nix", 18, 3, "plaintext-secret"),
    ("modules/services.nix", 19, 22, "token-in-source"),
    ("modules/suppressed.nix", 7, 3, "sandbox-disabled"),
    ("modules/suppressed.nix", 7, 50, "bad-suppression"),
    ("pkgs/tool.nix", 1, 17, "lookup-path"),
    ("pkgs/tool.nix", 5, 9, "fetch-without-hash"),
    ("pkgs/tool.nix", 6, 13, "fetch-without-hash"),
    ("pkgs/tool.nix", 7, 12, "fetch-without-hash"),
    ("pkgs/tool.nix", 8, 11, "fetchgit-without-rev"),
    ("pkgs/tool.nix", 9, 12, "import-from-derivation"),
    ("pkgs/tool.nix", 10, 10, "import-from-derivation"),
    ("pkgs/tool.nix", 11, 12, "import-from-derivation"),
    ("pkgs/tool.nix", 13, 1, "rec-attrset"),
]


def _where(report_root: Path, opts: AuditOptions | None = None) -> list[tuple[str, int, int, str]]:
    report = audit([report_root], opts)
    return [
        (Path(f.file).relative_to(report_root).as_posix(), f.line, f.column, f.rule)
        for f in report.findings
    ]


def test_clean_configuration_reports_nothing_at_any_severity() -> None:
    report = audit([FIXTURES / "clean"], AuditOptions(threshold=Severity.INFO))
    assert report.files == 5
    assert report.findings == []
    assert not report.failed


def test_bad_configuration_reports_every_seeded_problem_at_its_place() -> None:
    assert _where(FIXTURES / "bad") == EXPECTED_BAD


def test_bad_configuration_covers_every_rule() -> None:
    assert {rule for *_, rule in EXPECTED_BAD} == set(RULES)


def test_findings_carry_severity_message_and_hint() -> None:
    report = audit([FIXTURES / "bad" / "hosts" / "web1.nix"])
    by_rule = {f.rule: f for f in report.findings}
    fw = by_rule["firewall-disabled"]
    assert fw.severity is Severity.HIGH
    assert "networking.firewall.enable" in fw.message
    assert "allowedTCPPorts" in fw.hint
    assert report.failed  # high >= medium, the default threshold


def test_secret_values_are_not_repeated_in_messages() -> None:
    report = audit([FIXTURES / "bad"])
    text = " ".join(f.message for f in report.findings)
    for secret in ("changeme", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "IOSFODNN7EXAMPLE"):
        assert secret not in text


def _rules(src: str, **opts: object) -> list[tuple[int, int, str]]:
    options = AuditOptions(**opts) if opts else None  # type: ignore[arg-type]
    return [(f.line, f.column, f.rule) for f in audit_source(src.encode(), "t.nix", options)]


@pytest.mark.parametrize(
    "src",
    [
        "{ networking.firewall.enable = false; }",
        "{ networking = { firewall = { enable = false; }; }; }",
        "{ networking.firewall = { enable = false; }; }",
        "{ config.networking.firewall.enable = false; }",
        "{ lib, ... }: { config = lib.mkIf true { networking.firewall.enable = false; }; }",
        "{ lib, ... }: { networking = lib.mkMerge [ { firewall.enable = lib.mkForce false; } ]; }",
        "{ networking = { } // { firewall.enable = (false); }; }",
        "{ cfg, ... }: { networking = if cfg then { firewall.enable = false; } else { }; }",
    ],
)
def test_attribute_paths_match_in_every_form(src: str) -> None:
    assert [r for *_, r in _rules(src)] == ["firewall-disabled"]


@pytest.mark.parametrize(
    "src",
    [
        "{ networking.firewall.enable = true; }",
        "{ networking.firewall.enable = config.x; }",
        "{ networking.firewall.enabled = false; }",
        "{ services.foo.firewall.enable = false; networking.firewallx.enable = false; }",
        # a list element is a new value, not the networking option
        "{ networking.interfaces = [ { firewall.enable = false; } ]; }",
    ],
)
def test_firewall_rule_ignores_other_values_and_places(src: str) -> None:
    assert _rules(src) == []


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ('{ services.openssh.permitRootLogin = "yes"; }', ["ssh-root-login"]),
        ('{ services.openssh.settings.PermitRootLogin = "prohibit-password"; }', []),
        ('{ services.openssh.settings.PermitRootLogin = "no"; }', []),
        ("{ services.openssh.settings.PasswordAuthentication = true; }", ["ssh-password-auth"]),
        ("{ services.openssh.passwordAuthentication = true; }", ["ssh-password-auth"]),
        ("{ services.openssh.settings.PasswordAuthentication = false; }", []),
        ("{ services.openssh.extraConfig = \"PasswordAuthentication yes\\n\"; }",
         ["ssh-password-auth"]),
        ("{ services.openssh.extraConfig = \"PasswordAuthentication no\\n\"; }", []),
        ("{ services.openssh.extraConfig = \"X11Forwarding no\\nPermitRootLogin yes\"; }",
         ["ssh-root-login"]),
        ("{ nix.extraOptions = ''\n  sandbox = false\n''; }", ["sandbox-disabled"]),
        ('{ users.users.a.password = "x"; }', ["plaintext-secret"]),
        ('{ users.users.a.initialPassword = "x"; }', ["plaintext-secret"]),
        ('{ users.users.a.hashedPassword = "$6$x$y"; }', []),
        ('{ users.users.a.initialHashedPassword = "$6$x$y"; }', []),
        ('{ users.users.a.passwordFile = "/run/secrets/a"; }', []),
        ('{ services.x.tokenFile = "/run/secrets/t"; }', []),
        ('{ services.x.tokenType = "bearer"; }', []),
        ('{ services.x.secretKey = "s3cr3t"; }', ["plaintext-secret"]),
        ('{ services.x.api_key = "s3cr3t"; }', ["plaintext-secret"]),
        ('{ services.x.password = ""; }', []),
        ('{ services.x.password = "${config.x}"; }', []),
        ('{ x = "xoxb-1234567890-abcdefghij"; }', ["token-in-source"]),
        ('{ x = "glpat-abcdefghij0123456789"; }', ["token-in-source"]),
        ("/* -----BEGIN OPENSSH PRIVATE KEY----- */ { }", ["token-in-source"]),
        ("{ nix.useSandbox = false; }", ["sandbox-disabled"]),
        ("{ nix.settings.sandbox = true; }", []),
        ('{ nix.settings.sandbox = "relaxed"; }', []),
        ('{ environment.etc."ssh/ssh_host_ed25519_key".mode = "0600"; }', []),
        ('{ environment.etc."ssh/ssh_host_ed25519_key".mode = "0604"; }',
         ["world-readable-secret"]),
        ('{ environment.etc.motd = { text = "hi"; mode = "0644"; }; }', []),
        ('{ environment.etc.app = { source = ./secrets/app.env; mode = "0644"; }; }',
         ["world-readable-secret"]),
        ('{ age.secrets.x = { file = ./x.age; mode = "0444"; }; }', ["world-readable-secret"]),
        ('{ services.x.listenAddress = "0.0.0.0"; }', []),
        ('{ services.x = { listenAddress = "0.0.0.0"; openFirewall = true; }; }',
         ["listen-all-open-port"]),
        ('{ services.x.host = "127.0.0.1"; networking.firewall.allowedTCPPorts = [ 1 ]; }', []),
        ('{ services.x.bind = "0.0.0.0:80"; networking.firewall.allowedTCPPorts = [ ]; }', []),
        ('{ services.x.listen = [ "[::]:80" ]; networking.firewall.allowedUDPPorts = [ 53 ]; }',
         ["listen-all-open-port"]),
    ],
)
def test_security_rule_cases(src: str, expected: list[str]) -> None:
    assert [r for *_, r in _rules(src)] == expected


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("with import <nixpkgs> { }; { }", ["top-level-with", "lookup-path"]),
        ("{ pkgs, ... }: with pkgs; with lib; { }", ["top-level-with", "top-level-with"]),
        ("let x = 1; in with x; { }", ["top-level-with"]),
        ("{ pkgs, ... }: { environment.systemPackages = with pkgs; [ git ]; }", []),
        ("rec { a = 1; b = a; }", ["rec-attrset"]),
        ('builtins.fetchTarball { url = "u"; sha256 = "x"; }', []),
        ('builtins.fetchTarball { url = "u"; }', ["fetch-without-hash"]),
        ('fetchTarball "https://example.org/a.tar.gz"', ["fetch-without-hash"]),
        ('{ fetchzip }: fetchzip { url = "u"; hash = "sha256-x"; }', []),
        ('{ fetchzip, lib }: fetchzip { url = "u"; hash = lib.fakeHash; }',
         ["fetch-without-hash"]),
        ('{ fetchgit, h }: fetchgit { url = "u"; rev = "r"; inherit (h) sha256; }', []),
        ("{ fetchurl, args }: fetchurl args", []),
        ('builtins.fetchGit { url = "u"; rev = "0123"; }', []),
        ('builtins.fetchGit "https://example.org/r.git"', ["fetchgit-without-rev"]),
        ('fetchGit { url = "u"; }', ["fetchgit-without-rev"]),
        ("{ pkgs }: import ./x.nix { inherit pkgs; }", []),
        ('{ pkgs }: import "${pkgs.path}/nixos/lib/eval-config.nix"', []),
        ('{ inputs }: import "${inputs.nixpkgs}/lib"', []),
        ('{ pkgs }: import (pkgs.writeText "x.nix" "1")', ["import-from-derivation"]),
        ('{ pkgs }: builtins.readFile (pkgs.runCommandLocal "x" { } "echo > $out")',
         ["import-from-derivation"]),
        ('{ pkgs }: let d = pkgs.callPackage ./d.nix { }; in import (d + "/x.nix")',
         ["import-from-derivation"]),
        ('{ pkgs }: let d = pkgs.hello; in import "${d.out}/x.nix"', []),
    ],
)
def test_anti_pattern_rule_cases(src: str, expected: list[str]) -> None:
    assert [r for *_, r in _rules(src)] == expected


def test_mkforce_limit_is_configurable() -> None:
    src = "{ lib, ... }: { a = lib.mkForce 1; b = lib.mkForce 2; c = lib.mkForce 3; }"
    assert _rules(src) == []
    third = src.index("lib.mkForce 3") + 1
    assert _rules(src, mkforce_limit=2) == [(1, third, "mkforce-pileup")]


def test_mkforce_duplicate_sees_dotted_and_nested_forms() -> None:
    src = (
        "{ lib, ... }: lib.mkMerge [\n"
        "  { services.a.enable = lib.mkForce true; }\n"
        "  { services = { a = { enable = lib.mkForce false; }; }; }\n"
        "]\n"
    )
    column = src.splitlines()[2].index("enable") + 1
    assert _rules(src) == [(3, column, "mkforce-duplicate")]


def test_rule_selection_and_exclusion() -> None:
    src = '{ networking.firewall.enable = false; x = rec { }; y = <nixpkgs>; }'
    only = AuditOptions(enabled=select_rules(["firewall-disabled,rec-attrset"], None))
    assert [f.rule for f in audit_source(src.encode(), "t.nix", only)] == [
        "firewall-disabled",
        "rec-attrset",
    ]
    without = AuditOptions(enabled=select_rules(None, ["rec-attrset"]))
    assert [f.rule for f in audit_source(src.encode(), "t.nix", without)] == [
        "firewall-disabled",
        "lookup-path",
    ]


def test_unknown_rule_is_a_clear_error() -> None:
    from hlplay.audit import AuditError

    with pytest.raises(AuditError, match="did you mean 'firewall-disabled'"):
        select_rules(["firewall-disable"])


def test_threshold_decides_failure() -> None:
    src = b"rec { a = 1; }"
    report_low = audit_source(src, "t.nix")
    assert [f.severity for f in report_low] == [Severity.INFO]
    from hlplay.audit import AuditReport

    assert not AuditReport(".", 1, report_low, Severity.MEDIUM).failed
    assert AuditReport(".", 1, report_low, Severity.INFO).failed
