"""`# hlplay: ignore[RULE]` comments silence findings where they say, and only there."""

from __future__ import annotations

from hlplay.audit import audit_source

FW = "networking.firewall.enable = false;"


def _rules(src: str) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in audit_source(src.encode(), "t.nix")]


def test_trailing_comment_silences_its_line() -> None:
    assert _rules(f"{{\n  {FW} # hlplay: ignore[firewall-disabled]\n}}\n") == []


def test_comment_on_the_line_above_silences_the_next_line() -> None:
    assert _rules(f"{{\n  # hlplay: ignore[firewall-disabled]\n  {FW}\n}}\n") == []


def test_comment_two_lines_above_does_not_reach() -> None:
    src = f"{{\n  # hlplay: ignore[firewall-disabled]\n\n  {FW}\n}}\n"
    assert _rules(src) == [(4, "firewall-disabled")]


def test_other_rules_on_the_line_still_report() -> None:
    src = '{\n  x = rec { p.password = "pw"; }; # hlplay: ignore[rec-attrset]\n}\n'
    assert _rules(src) == [(2, "plaintext-secret")]


def test_several_rules_in_one_comment() -> None:
    src = (
        "{\n  # hlplay: ignore[ssh-root-login, ssh-password-auth]\n"
        '  services.openssh.settings = { PermitRootLogin = "yes"; '
        "PasswordAuthentication = true; };\n}\n"
    )
    assert _rules(src) == []


def test_file_level_suppression_anywhere_in_the_file() -> None:
    src = "{\n  a = rec { };\n  b = rec { };\n}\n# hlplay: ignore-file[rec-attrset]\n"
    assert _rules(src) == []


def test_unknown_rule_in_a_suppression_is_reported_and_silences_nothing() -> None:
    src = f"{{\n  {FW} # hlplay: ignore[firewall-disabeld]\n}}\n"
    findings = audit_source(src.encode(), "t.nix")
    assert [(f.line, f.rule) for f in findings] == [
        (2, "firewall-disabled"),
        (2, "bad-suppression"),
    ]
    assert "did you mean 'firewall-disabled'" in findings[1].message
    assert findings[1].column == src.splitlines()[1].index("firewall-disabeld") + 1


def test_parse_errors_can_be_suppressed_for_a_file() -> None:
    assert _rules("# hlplay: ignore-file[parse-error]\n{ a = ; }\n") == []


def test_a_directive_inside_a_string_is_still_honoured_but_needs_a_hash() -> None:
    # the comment marker is what counts; plain text mentioning the rule does nothing
    assert _rules(f'{{\n  {FW} x = "hlplay: ignore[firewall-disabled]";\n}}\n') == [
        (2, "firewall-disabled")
    ]
