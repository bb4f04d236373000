"""Bad input to diff, generations, lab, health, audit, mcp and the shipped playbooks.

Each case runs the real CLI in a process of its own and expects what a user
should see: a documented non-zero exit code, one clear line saying what is
wrong (``ERROR: …``, click's ``Error: …`` for a bad option, or a playbook's
``fatal: [host]: FAILED!`` line), and never a traceback, an internal error or
a hang.

Two configurations, both real git repositories and real Nix, no fleet:
``local`` is the test flake of tests/fixtures/nix.py with web1 (tier test) and
web2 (tier prod) as ``transport: local`` hosts; ``labcfg`` is the lab's own
configuration (it defines packages and has a flake input) with two local hosts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fixtures.lab import REPO, free_port, make_lab_inventory
from fixtures.nix import NixTestFlake
from realparts import nix_available, require

HANG = 90  # seconds: a case still running by then has hung

EXIT_ERROR, EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_BAD_OPTIONS = 1, 2, 3, 5
FATAL = re.compile(r"^fatal: \[[^\]]+\]: FAILED! => .*$", re.M)


@dataclass
class Env:
    root: Path
    local: Path  # inventory: the test flake, web1 (test) and web2 (prod)
    labcfg: Path  # inventory: the lab configuration, two local hosts
    lab: Path  # a lab inventory whose lab is not up
    nix_file: Path


def _inventory(path: Path, flake: Path, hosts: dict[str, tuple[str, dict[str, str]]]) -> Path:
    doc = {
        "hlplay": {"nix": {"flake": str(flake)}},
        "hosts": {
            name: {"tier": tier, "transport": "local", "vars": hvars}
            for name, (tier, hvars) in hosts.items()
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    require(nix_available(), "Nix (nix-bin)")
    from hlplay.lab import configrepo

    root = tmp_path_factory.mktemp("badinput")
    flake = NixTestFlake(root / "nixtest")
    for host in ("web1", "web2"):
        flake.set_host(host, {"hello": "1.0"})
    flake.commit("v1")
    local = _inventory(
        root / "local.yml",
        flake.root,
        {"web1": ("test", flake.host_vars("web1")), "web2": ("prod", flake.host_vars("web2"))},
    )
    config = root / "labcfg" / "config"
    config.parent.mkdir()
    configrepo.create(config)
    state = root / "labcfg" / "hosts"
    labcfg = _inventory(
        root / "labcfg.yml",
        config,
        {
            h: (tier, {"hlplay_profile": str(state / h / "system")})
            for h, tier in (("test-web1", "test"), ("prod-web1", "prod"))
        },
    )
    lab_root = root / "lab"
    lab_root.mkdir()
    lab = make_lab_inventory(lab_root, free_port(), free_port())
    nix_file = root / "ok.nix"
    nix_file.write_text("{ }\n")
    return Env(root=root, local=local, labcfg=labcfg, lab=lab, nix_file=nix_file)


def hlplay(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "hlplay.cli.main", *args],
            cwd=env.root,
            env={**os.environ, "HLPLAY_NO_COLOR": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HANG,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hlplay {' '.join(args)} hung for {HANG}s")


def clear_failure(res: subprocess.CompletedProcess[str], code: int, expected: str) -> str:
    """Assert a clean failure; return the one line that explains it."""
    both = res.stdout + res.stderr
    assert "Traceback" not in both, both
    assert "internal error" not in both, both
    assert res.returncode == code, f"exit {res.returncode}, wanted {code}\n{both}"
    errors = [
        line
        for line in res.stderr.splitlines()
        if line.startswith("ERROR: ") or line.startswith("Error: ")
    ]
    if errors:
        assert len(errors) == 1, res.stderr
        line = errors[0]
    else:
        fatal = FATAL.findall(res.stdout)
        assert fatal, f"no ERROR: line and no failed task\n{both}"
        assert len({re.sub(r"^fatal: \[[^\]]+\]", "", f) for f in fatal}) == 1, res.stdout
        line = fatal[0]
    assert expected in line, f"{expected!r} not in {line!r}"
    return line


def p(name: str) -> str:
    return str(REPO / "playbooks" / name)


# (id, arguments with {local} {labcfg} {lab} {nix} {root} placeholders, exit code, expected)
CASES: list[tuple[str, list[str], int, str]] = [
    # hlplay diff
    ("diff-missing-paths", ["diff", "/nonexistent/a", "/nonexistent/b"], EXIT_ERROR,
     "no such file or store path: /nonexistent/a"),
    ("diff-path-outside-store", ["diff", "{nix}", "{nix}"], EXIT_ERROR, "is not in the Nix store"),
    ("diff-bad-regex", ["diff", "~web(", "-i", "{local}"], EXIT_ERROR,
     "invalid regular expression"),
    ("diff-unknown-host", ["diff", "webx", "-i", "{local}"], EXIT_ERROR,
     "no host or group named 'webx'"),
    ("diff-shell-revision", ["diff", "all", "-i", "{local}", "--revision", ";rm -rf /"],
     EXIT_BAD_OPTIONS, "--revision ';rm -rf /'"),
    ("diff-option-revision", ["diff", "all", "-i", "{local}", "--revision", "--upload-pack=x"],
     EXIT_BAD_OPTIONS, "must not start with '-'"),
    ("diff-three-arguments", ["diff", "a", "b", "c", "-i", "{local}"], EXIT_BAD_OPTIONS,
     "expected a host PATTERN"),
    ("diff-zero-timeout", ["diff", "all", "-i", "{local}", "--timeout", "0"], EXIT_BAD_OPTIONS,
     "'--timeout'"),
    ("diff-missing-inventory", ["diff", "all", "-i", "{root}/nowhere"], EXIT_ERROR,
     "no such inventory file or directory"),
    # hlplay generations
    ("generations-unknown-host", ["generations", "webx", "-i", "{local}"], EXIT_ERROR,
     "no host or group named 'webx'"),
    ("generations-nan-timeout", ["generations", "-i", "{local}", "--timeout", "nan"],
     EXIT_BAD_OPTIONS, "'nan' is not a number"),
    # hlplay lab
    ("lab-up-not-a-lab", ["lab", "up", "-i", "{local}"], EXIT_ERROR, "not a lab inventory"),
    ("lab-status-down", ["lab", "status", "-i", "{lab}"], EXIT_NOT_RUNNING,
     "the lab is not running"),
    ("lab-bump-before-up", ["lab", "bump", "nginx-lite", "1.26", "-i", "{lab}"], EXIT_ERROR,
     "bring the lab up first"),
    ("lab-bump-unsafe-version", ["lab", "bump", "nginx-lite", '1"; x', "-i", "{lab}"],
     EXIT_ERROR, "invalid version"),
    # hlplay health
    ("health-disk-over-100", ["health", "-i", "{local}", "--disk-max", "150"], EXIT_BAD_OPTIONS,
     "'--disk-max'"),
    ("health-nan-threshold", ["health", "-i", "{local}", "--mem-min", "nan"], EXIT_BAD_OPTIONS,
     "'nan' is not a number"),
    ("health-word-threshold", ["health", "-i", "{local}", "-e", "health_load_max_per_cpu=high"],
     EXIT_ERROR, "health_load_max_per_cpu must be a number, got 'high'"),
    ("health-file-url", ["health", "-i", "{local}", "--prometheus-url", "file:///etc/passwd"],
     EXIT_ERROR, "must be an http:// or https:// URL"),
    ("health-broken-url", ["health", "-i", "{local}", "--alertmanager-url", "http://[::1"],
     EXIT_ERROR, "is not a valid URL"),
    # hlplay audit
    ("audit-missing-path", ["audit", "{root}/nowhere"], EXIT_ERROR, "no such file or directory"),
    ("audit-bad-severity", ["audit", "{nix}", "--severity", "bogus"], EXIT_ERROR,
     "unknown severity 'bogus'"),
    ("audit-unknown-rule", ["audit", "{nix}", "--rule", "no-such-rule"], EXIT_ERROR,
     "no-such-rule"),
    # hlplay mcp
    ("mcp-missing-seed", ["mcp", "-i", "{local}", "--test-credentials", "{root}/none.seed"],
     EXIT_BAD_OPTIONS, "--test-credentials"),
    ("mcp-not-a-seed", ["mcp", "-i", "{local}", "--admin-credentials", "{local}"],
     EXIT_BAD_OPTIONS, "not an NKey user seed"),
    ("mcp-forged-seed", ["mcp", "-i", "{local}", "--test-credentials", "{root}/forged.seed"],
     EXIT_BAD_OPTIONS, "not a valid NKey seed"),
    ("mcp-unknown-tier", ["mcp", "-i", "{local}", "--allow-tier", "staging"], EXIT_BAD_OPTIONS,
     "no host of the inventory is in tier 'staging'"),
    ("mcp-missing-playbook", ["mcp", "-i", "{local}", "--playbook", "{root}/none.yml"],
     EXIT_BAD_OPTIONS, "no such playbook file"),
    # deploy-all.yml
    ("deploy-all-unknown-revision", [p("deploy-all.yml"), "-i", "{local}", "-e", "revision=nosuch"],
     EXIT_FAILED, "unknown revision 'nosuch'"),
    ("deploy-all-shell-revision",
     [p("deploy-all.yml"), "-i", "{local}", "-e", '{"revision": ";rm -rf /"}'], EXIT_FAILED,
     "not a revision: ';rm -rf /'"),
    ("deploy-all-unparsable-extra-vars",
     [p("deploy-all.yml"), "-i", "{local}", "-e", "revision=;rm -rf /"], EXIT_BAD_OPTIONS,
     "-e 'revision=;rm -rf /'"),
    ("deploy-all-serial", [p("deploy-all.yml"), "-i", "{local}", "-e", "serial=some"], EXIT_ERROR,
     "serial must be a number"),
    ("deploy-all-confirm-timeout",
     [p("deploy-all.yml"), "-i", "{local}", "-e", "confirm_timeout=-5"], EXIT_FAILED,
     "confirm_timeout must be a number of seconds"),
    # update-package.yml
    ("update-package-no-package", [p("update-package.yml"), "-i", "{labcfg}"], EXIT_FAILED,
     "-e package=NAME -e version=VERSION"),
    ("update-package-no-version",
     [p("update-package.yml"), "-i", "{labcfg}", "-e", "package=motd"], EXIT_FAILED,
     "-e package=NAME -e version=VERSION"),
    ("update-package-unknown",
     [p("update-package.yml"), "-i", "{labcfg}", "-e", "package=webui", "-e", "version=2"],
     EXIT_FAILED, "unknown package 'webui' (did you mean 'webui-lite'?)"),
    ("update-package-unsafe-version",
     [p("update-package.yml"), "-i", "{labcfg}", "-e", "package=motd", "-e",
      'version=1.1"; x = "'], EXIT_FAILED, "invalid version"),
    # flake-update.yml
    ("flake-update-unknown-input",
     [p("flake-update.yml"), "-i", "{labcfg}", "-e", "inputs=nixpkgs"], EXIT_FAILED,
     "unknown input 'nixpkgs'"),
    ("flake-update-other-branch",
     [p("flake-update.yml"), "-i", "{labcfg}", "-e", "base_branch=release"], EXIT_FAILED,
     "not release"),
    # system-health-check.yml
    ("health-check-word-threshold",
     [p("system-health-check.yml"), "-i", "{local}", "-e", "health_disk_max_percent=full"],
     EXIT_FAILED, "health_disk_max_percent must be a number, got 'full'"),
    ("health-check-threshold-range",
     [p("system-health-check.yml"), "-i", "{local}", "-e", "health_mem_min_percent=101"],
     EXIT_FAILED, "health_mem_min_percent must be between 0 and 100"),
    # config-audit.yml
    ("config-audit-bad-severity",
     [p("config-audit.yml"), "-i", "{local}", "-e", "audit_severity=bogus"], EXIT_FAILED,
     "argument 'severity' must be one of"),
    ("config-audit-missing-path",
     [p("config-audit.yml"), "-i", "{local}", "-e", "audit_path={root}/nowhere"], EXIT_FAILED,
     "no such file or directory"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_one_clear_line(env: Env, args: list[str], code: int, expected: str) -> None:
    (env.root / "forged.seed").write_text("SUAforged\n")
    values = {
        "local": str(env.local),
        "labcfg": str(env.labcfg),
        "lab": str(env.lab),
        "nix": str(env.nix_file),
        "root": str(env.root),
    }
    argv = [a.format(**values) if "{" in a and "}" in a and '"' not in a else a for a in args]
    clear_failure(hlplay(env, *argv), code, expected.format(**values))


def test_bad_input_to_a_lab_configuration_changes_nothing(env: Env) -> None:
    """``lab bump`` of an unknown package, once the lab's configuration exists."""
    from hlplay.inventory.loader import load_inventory
    from hlplay.lab import configrepo
    from hlplay.lab.layout import layout_for

    config = layout_for(load_inventory(str(env.lab))).config
    try:
        configrepo.create(config)
        head = subprocess.run(
            ["git", "-C", str(config), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        res = hlplay(env, "lab", "bump", "nosuch-lite", "1.0", "-i", str(env.lab))
        line = clear_failure(res, EXIT_ERROR, "no package 'nosuch-lite' with a version here")
        assert "nginx-lite" in line  # the packages it does have
        after = subprocess.run(
            ["git", "-C", str(config), "status", "--porcelain"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert after == ""
        assert subprocess.run(
            ["git", "-C", str(config), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout == head  # fmt: skip
    finally:
        shutil.rmtree(config, ignore_errors=True)


def test_a_malformed_monitoring_url_in_the_inventory_does_not_hang(env: Env) -> None:
    inv = yaml.safe_load(env.local.read_text())
    inv["hlplay"]["monitoring"] = {"prometheus_url": "http://[::1"}
    path = env.root / "badmon.yml"
    path.write_text(yaml.safe_dump(inv))
    res = hlplay(env, "health", "-i", str(path))
    clear_failure(res, EXIT_ERROR, "the Prometheus URL is not a valid URL")
