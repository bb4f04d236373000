"""flake.nix and the NixOS module: they parse, and the service runs a real ``hlplay listen``.

No nixpkgs here, so the module is evaluated by the real Nix against a small
stand-in for nixpkgs' ``lib`` (only what the module uses, with type checks);
the flag table ``nixos/flags.nix`` is plain Nix and evaluated as is.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import realparts
from hlplay.cli.main import COMMANDS

pytestmark = pytest.mark.nix

REPO = Path(__file__).resolve().parents[2]
NIX_FILES = ("flake.nix", "nixos/module.nix", "nixos/flags.nix")

# The parts of nixpkgs' lib the module uses; types carry a `check`.
STUB_LIB = r"""
let
  all = builtins.all;
  type = name: check: { inherit name check; };
in rec {
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = what: mkOption { type = types.bool; default = false; description = what; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  optional = cond: x: if cond then [ x ] else [ ];
  optionalAttrs = cond: attrs: if cond then attrs else { };
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  types = rec {
    str = type "str" builtins.isString;
    bool = type "bool" builtins.isBool;
    package = type "package" (v: builtins.isString v || builtins.isAttrs v);
    number = type "number" (v: builtins.isInt v || builtins.isFloat v);
    ints.positive = type "positive int" (v: builtins.isInt v && v > 0);
    strMatching = re:
      type "string matching ${re}" (v: builtins.isString v && builtins.match re v != null);
    enum = values: type "one of ${builtins.toJSON values}" (v: builtins.elem v values);
    nullOr = t: type "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: type "list of ${t.name}" (v: builtins.isList v && all t.check v);
    nonEmptyListOf = t: type "non-empty list of ${t.name}" (v: (listOf t).check v && v != [ ]);
  };
}
"""

EVAL = r"""
{ repo, lib, sample }:
let
  module = repo + "/nixos/module.nix";
  evalWith = cfg: import module {
    inherit lib;
    pkgs = {
      git = "/nix/store/git";
      openssh = "/nix/store/openssh";
      coreutils = "/nix/store/coreutils";
      bash = "/nix/store/bash";
      util-linux = "/nix/store/util-linux";
      findutils = "/nix/store/findutils";
      gnugrep = "/nix/store/gnugrep";
    };
    config = {
      services.hlplay-listener = cfg;
      networking.hostName = "web1";
      nix.package = "/nix/store/nix";
      systemd.package = "/nix/store/systemd";
      system.build.nixos-rebuild = "/nix/store/nixos-rebuild";
    };
  };
  decl = (evalWith { }).options.services.hlplay-listener;
  names = builtins.attrNames decl;
  required = builtins.filter (n: !(decl.${n} ? default)) names;
  defaults = builtins.mapAttrs (n: o: o.default) (builtins.removeAttrs decl required);
  cfg = defaults // sample;
  m = evalWith cfg;
  service = m.config.content.systemd.services.hlplay-listener;
in {
  options = names;
  inherit required;
  badDefaults =
    builtins.filter (n: !(decl.${n}.type.check defaults.${n})) (builtins.attrNames defaults);
  badSample = builtins.filter (n: !(decl.${n}.type.check cfg.${n})) (builtins.attrNames cfg);
  assertions = map (a: a.assertion) m.config.content.assertions;
  enabled = m.config.condition;
  execStart = service.serviceConfig.ExecStart;
  serviceConfig = builtins.removeAttrs service.serviceConfig [ "ExecStart" ];
  restartIfChanged = service.restartIfChanged;
  unitConfig = service.unitConfig or { };
  path = service.path;
}
"""

SAMPLE = {
    "enable": True,
    "package": "/nix/store/0000000000000000000000000000000a-hlplay-0.1.0",
    "tier": "test",
    "roles": ["web", "edge"],
    "natsUrls": ["nats://nats1.example.org:4222", "nats://nats2.example.org:4222"],
    "nkeyFile": "/run/secrets/hlplay listener.seed",
    "flakeUrl": "git+https://git.example.org/fleet.git?dir=hosts%2Fall",
    "profile": "/nix/var/nix/profiles/system",
    "timeout": 1800,
    "subjectHost": "deploy.<tier>.<hostname>",
    "discoverSubject": "deploy.discover",
    "diskPaths": ["/", "/nix"],
    "progressInterval": 0.5,
    "logLevel": "info",
    "trustedKeysFile": "/etc/hlplay/test.deployers",
    "extraArgs": [],
}


def _nix(*args: str) -> str:
    proc = subprocess.run(
        ["nix-instantiate", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _evaluate(tmp_path: Path, sample: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "lib.nix").write_text(STUB_LIB)
    (tmp_path / "eval.nix").write_text(EVAL)
    expr = (
        f"import {tmp_path / 'eval.nix'} {{ repo = {REPO}; lib = import {tmp_path / 'lib.nix'}; "
        f"sample = builtins.fromJSON {json.dumps(json.dumps(sample))}; }}"
    )
    result: dict[str, Any] = json.loads(_nix("--eval", "--strict", "--json", "-E", expr))
    return result


def _exec_argv(exec_start: str) -> list[str]:
    """systemd's reading of an Exec line: quoted words, %% and $$ undoubled, %d expanded."""
    words = shlex.split(exec_start)
    return [
        w.replace("%d", "/run/credentials/hlplay-listener.service")
        .replace("%%", "%")
        .replace("$$", "$")
        for w in words
    ]


def _listen_flags() -> set[str]:
    """The flags ``hlplay listen --help`` documents."""
    proc = subprocess.run(
        [sys.executable, "-m", "hlplay.cli.main", "listen", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 or "Usage:" not in proc.stdout:
        pytest.fail(f"hlplay listen --help failed: {proc.stdout}{proc.stderr}")
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", proc.stdout)) - {"--help"}


@pytest.fixture(scope="module")
def flag_table() -> dict[str, Any]:
    realparts.require(realparts.nix_available(), "nix")
    table: dict[str, Any] = json.loads(
        _nix(
            "--eval",
            "--strict",
            "--json",
            "-E",
            'removeAttrs (import ./nixos/flags.nix) [ "args" "execArgs" ]',
        )
    )
    return table


def test_nix_files_parse() -> None:
    realparts.require(realparts.nix_available(), "nix")
    for name in NIX_FILES:
        _nix("--parse", name)


def test_every_module_option_is_a_listen_flag(tmp_path: Path, flag_table: dict[str, Any]) -> None:
    result = _evaluate(tmp_path, SAMPLE)
    options = set(result["options"])
    flags: dict[str, str] = flag_table["flags"]
    unmapped = options - set(flags) - set(flag_table["nonFlagOptions"])
    assert not unmapped, f"module options with no hlplay listen flag: {sorted(unmapped)}"
    real = _listen_flags()
    unknown = {opt: flag for opt, flag in flags.items() if flag not in real}
    assert not unknown, f"flags.nix names flags hlplay listen does not have: {unknown}"
    assert set(result["required"]) == {"package", "tier", "natsUrls", "nkeyFile", "flakeUrl"}
    assert result["badDefaults"] == [] and result["badSample"] == []


def test_exec_start_is_a_valid_listen_command_line(
    tmp_path: Path, flag_table: dict[str, Any]
) -> None:
    result = _evaluate(tmp_path, SAMPLE)
    assert result["enabled"] is True and all(result["assertions"])
    argv = _exec_argv(result["execStart"])
    assert argv[0] == f"{SAMPLE['package']}/bin/hlplay"
    assert argv[1] == "listen"
    used = {w for w in argv[2:] if w.startswith("--")}
    assert used <= set(flag_table["flags"].values())
    assert used <= _listen_flags()

    # The real command line parser accepts it, with the values the module was given.
    module_name, attr, _help = COMMANDS["listen"]
    command = getattr(importlib.import_module(module_name), attr)
    ctx = command.make_context("listen", argv[2:])
    values = list(ctx.params.values())
    for expected in ("web1", "test", SAMPLE["flakeUrl"], 1800, 0.5, "info"):
        assert any(v == expected for v in values), (expected, ctx.params)
    for many in ("roles", "natsUrls", "diskPaths"):
        assert any(v in (tuple(SAMPLE[many]), SAMPLE[many]) for v in values), (many, ctx.params)
    # the seed comes from the unit's credentials, never from the store
    assert argv[-2:] == ["--nkey-file", "/run/credentials/hlplay-listener.service/nkey"]
    assert result["serviceConfig"]["LoadCredential"] == [f"nkey:{SAMPLE['nkeyFile']}"]


def test_service_is_hardened_for_a_root_deploy_agent(tmp_path: Path) -> None:
    # The strict sandbox is for a listener that activates nothing (noop).
    sc = _evaluate(tmp_path, {**SAMPLE, "executor": "noop"})["serviceConfig"]
    assert sc["User"] == "root" and "DynamicUser" not in sc
    for key in (
        "NoNewPrivileges", "ProtectHome", "PrivateTmp", "LockPersonality", "RestrictRealtime",
        "ProtectKernelModules", "ProtectKernelLogs", "ProtectClock", "ProtectHostname",
        "RestrictSUIDSGID", "MemoryDenyWriteExecute",
    ):  # fmt: skip
        assert sc[key] is True, key
    assert sc["ProtectSystem"] == "strict"
    assert sc["SystemCallArchitectures"] == "native"
    assert set(sc["RestrictAddressFamilies"]) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert "/nix/var/nix/profiles" in sc["ReadWritePaths"]


def test_nix_executor_keeps_what_in_service_activation_needs(tmp_path: Path) -> None:
    # The nix executor activates from inside the service: /etc, /boot, homes,
    # sysctls and setuid wrappers must stay writable for it.
    result = _evaluate(tmp_path, {**SAMPLE, "executor": "nix"})
    sc = result["serviceConfig"]
    for key in ("ProtectSystem", "ProtectHome", "RestrictSUIDSGID", "ProtectKernelTunables"):
        assert key not in sc, key
    assert sc["LockPersonality"] is True and sc["PrivateTmp"] is True
    assert "/nix/store/nixos-rebuild" not in result["path"]


def test_the_default_listener_runs_the_nix_pipeline_with_what_it_calls(tmp_path: Path) -> None:
    # What a NixOS operator gets with no executor option: the one pipeline,
    # a PATH with every program it runs (a unit's PATH has nothing else), and
    # a service that a switch neither restarts nor stops, as nixpkgs'
    # system.autoUpgrade service.
    result = _evaluate(tmp_path, SAMPLE)
    argv = _exec_argv(result["execStart"])
    assert argv[argv.index("--executor") + 1] == "nix" if "--executor" in argv else True
    assert "ProtectSystem" not in result["serviceConfig"]
    for pkg in ("nix", "systemd", "bash", "util-linux", "coreutils", "findutils", "gnugrep"):
        assert f"/nix/store/{pkg}" in result["path"], pkg
    assert result["restartIfChanged"] is False
    assert result["unitConfig"]["X-StopOnRemoval"] is False


def test_a_seed_in_the_store_is_refused(tmp_path: Path) -> None:
    result = _evaluate(tmp_path, {**SAMPLE, "nkeyFile": "/nix/store/abc-listener.seed"})
    assert result["assertions"][0] is False and all(result["assertions"][1:])


def test_requests_must_be_signed_unless_unsigned_ones_are_allowed(tmp_path: Path) -> None:
    # Security by default: a host with no trusted deployer keys does not evaluate.
    bare = {k: v for k, v in SAMPLE.items() if k != "trustedKeysFile"}
    assert not all(_evaluate(tmp_path, bare)["assertions"])
    result = _evaluate(tmp_path, {**bare, "allowUnsigned": True})
    assert all(result["assertions"])
    argv = _exec_argv(result["execStart"])
    assert "--accept-unsigned" in argv and "--trusted-keys" not in argv
    argv = _exec_argv(_evaluate(tmp_path, SAMPLE)["execStart"])
    assert "--accept-unsigned" not in argv
    assert argv[argv.index("--trusted-keys") + 1] == SAMPLE["trustedKeysFile"]


def test_trusted_keys_given_inline_become_a_file(tmp_path: Path) -> None:
    from hlplay.auth.keys import generate

    keys = [generate()[1], generate()[1]]
    bare = {k: v for k, v in SAMPLE.items() if k != "trustedKeysFile"}
    result = _evaluate(tmp_path, {**bare, "trustedKeys": keys})
    assert all(result["assertions"])
    argv = _exec_argv(result["execStart"])
    assert argv[argv.index("--trusted-keys") + 1].startswith("/nix/store/")
    both = _evaluate(tmp_path, {**SAMPLE, "trustedKeys": keys})
    assert not all(both["assertions"])


def test_a_signing_seed_is_a_credential_outside_the_store(tmp_path: Path) -> None:
    seed = "/run/secrets/hlplay-signing.seed"
    result = _evaluate(tmp_path, {**SAMPLE, "signingSeedFile": seed})
    assert all(result["assertions"])
    argv = _exec_argv(result["execStart"])
    assert argv[argv.index("--signing-seed") + 1] == (
        "/run/credentials/hlplay-listener.service/signing-seed"
    )
    assert f"signing-seed:{seed}" in result["serviceConfig"]["LoadCredential"]
    assert seed not in argv
    stored = _evaluate(tmp_path, {**SAMPLE, "signingSeedFile": "/nix/store/abc-signing.seed"})
    assert not all(stored["assertions"])
