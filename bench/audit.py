"""Audit 1,000 generated .nix files and compare with a `nix-instantiate --parse` loop.

    python bench/audit.py [--files 1000] [--seed 7] [--no-peer]

Generates module-sized files (hosts, service modules, packages, flakes; about
one in six with a seeded problem) in a temporary directory, then times:

- hlplay's audit in this process (tree-sitter parse + every rule), cold —
  parser loading included — as `hlplay audit DIR` would run it;
- the loop a user might script instead: `nix-instantiate --parse FILE` for each
  file, which only checks syntax (when nix-instantiate is on PATH).

Prints the wall times, the findings count and the ratio.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

SERVICES = ["nginx", "postgresql", "grafana", "prometheus", "redis", "gitea", "loki", "caddy"]
PACKAGES = ["git", "vim", "htop", "curl", "jq", "ripgrep", "fd", "tmux", "wget", "rsync"]

_END = "  system.stateVersion"
# (text to find, what to put instead): one seeded problem per affected host file
PROBLEMS = [
    (_END, "  networking.firewall.enable = false;\n" + _END),
    ('PermitRootLogin = "prohibit-password"', 'PermitRootLogin = "yes"'),
    ("PasswordAuthentication = false", "PasswordAuthentication = true"),
    (_END, '  users.users.guest.initialPassword = "guest";\n' + _END),
    (_END, "  nix.settings.sandbox = false;\n" + _END),
    (_END, '  environment.etc."app/secret.key" = { source = ./app.key; mode = "0644"; };\n' + _END),
    (_END, '  services.myapp = { listenAddress = "0.0.0.0"; openFirewall = true; };\n' + _END),
    (_END, '  fleet.src = builtins.fetchTarball "https://example.org/src.tar.gz";\n' + _END),
    (_END, "  fleet.numbers = rec { a = 1; b = a; };\n" + _END),
]


def host_file(rng: random.Random, i: int) -> str:
    svcs = rng.sample(SERVICES, 3)
    pkgs = " ".join(rng.sample(PACKAGES, 6))
    ports = " ".join(str(rng.randint(1000, 9999)) for _ in range(3))
    users = "\n".join(
        f"""  users.users.user{u} = {{
    isNormalUser = true;
    extraGroups = [ "wheel" "networkmanager" ];
    hashedPassword = "$6$salt{u}$hash";
    openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAAC3Nza{u} user{u}@laptop" ];
  }};"""
        for u in range(rng.randint(1, 3))
    )
    services = "\n".join(
        f"""  services.{s} = {{
    enable = true;
    settings = {{
      port = {rng.randint(1000, 9999)};
      dataDir = "/var/lib/{s}";
      logLevel = "info";
    }};
  }};"""
        for s in svcs
    )
    return f"""{{ config, lib, pkgs, ... }}:

let
  cfg = config.fleet.host{i};
  domain = "host{i}.example.org";
in
{{
  imports = [ ./hardware-configuration.nix ../modules/common.nix ];

  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;
  boot.kernelParams = [ "console=ttyS0" "quiet" ];

  networking.hostName = "host{i}";
  networking.domain = "example.org";
  networking.firewall.allowedTCPPorts = [ 22 {ports} ];

  time.timeZone = "Europe/Paris";
  i18n.defaultLocale = "en_US.UTF-8";

  services.openssh = {{
    enable = true;
    settings = {{ PermitRootLogin = "prohibit-password"; PasswordAuthentication = false; }};
  }};

{users}

{services}

  environment.systemPackages = with pkgs; [ {pkgs} ];

  systemd.services."backup-{i}" = {{
    description = "Nightly backup of ${{domain}}";
    startAt = "daily";
    serviceConfig = {{
      Type = "oneshot";
      ExecStart = "${{pkgs.restic}}/bin/restic backup /var/lib";
      EnvironmentFile = config.sops.secrets.restic.path;
    }};
  }};

  nix.settings.experimental-features = [ "nix-command" "flakes" ];
  nix.gc = {{ automatic = true; dates = "weekly"; options = "--delete-older-than 30d"; }};
  system.stateVersion = "24.05";
}}
"""


def module_file(rng: random.Random, i: int) -> str:
    svc = rng.choice(SERVICES)
    return f"""{{ config, lib, pkgs, ... }}:

let
  cfg = config.fleet.{svc}{i};
  inherit (lib) mkEnableOption mkOption mkIf mkMerge types;
in
{{
  options.fleet.{svc}{i} = {{
    enable = mkEnableOption "{svc} instance {i}";
    port = mkOption {{
      type = types.port;
      default = {rng.randint(1000, 9999)};
      description = ''
        Port {svc} instance {i} listens on (bound to localhost).
      '';
    }};
    extraSettings = mkOption {{
      type = types.attrsOf types.str;
      default = {{ }};
    }};
  }};

  config = mkIf cfg.enable (mkMerge [
    {{
      systemd.services.{svc}-{i} = {{
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ];
        environment = lib.mapAttrs' (n: v: lib.nameValuePair "APP_${{n}}" v) cfg.extraSettings;
        serviceConfig = {{
          ExecStart = "${{pkgs.{svc}}}/bin/{svc} --listen 127.0.0.1:${{toString cfg.port}}";
          DynamicUser = true;
          StateDirectory = "{svc}-{i}";
          ProtectSystem = "strict";
          NoNewPrivileges = true;
        }};
      }};
    }}
    (mkIf (cfg.port < 1024) {{
      systemd.services.{svc}-{i}.serviceConfig.AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
    }})
  ]);
}}
"""


def package_file(rng: random.Random, i: int) -> str:
    name = f"tool{i}"
    return f"""{{ lib, stdenv, fetchurl, makeWrapper, coreutils }}:

stdenv.mkDerivation (finalAttrs: {{
  pname = "{name}";
  version = "1.{rng.randint(0, 20)}.{rng.randint(0, 9)}";

  src = fetchurl {{
    url = "https://example.org/{name}-${{finalAttrs.version}}.tar.gz";
    hash = "sha256-{"A" * 43}=";
  }};

  nativeBuildInputs = [ makeWrapper ];

  installPhase = ''
    runHook preInstall
    mkdir -p $out/bin
    cp {name} $out/bin/
    wrapProgram $out/bin/{name} --prefix PATH : ${{lib.makeBinPath [ coreutils ]}}
    runHook postInstall
  '';

  meta = {{
    description = "Tool number {i}";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
  }};
}})
"""


def generate(root: Path, count: int, seed: int) -> int:
    rng = random.Random(seed)
    seeded = 0
    makers = [host_file, host_file, module_file, package_file]
    for i in range(count):
        kind = makers[i % len(makers)]
        text = kind(rng, i)
        if kind is host_file and rng.random() < 0.35:
            find, put = rng.choice(PROBLEMS)
            text = text.replace(find, put, 1)
            seeded += 1
        folder = {host_file: "hosts", module_file: "modules"}.get(kind, "pkgs")
        sub = root / folder
        sub.mkdir(exist_ok=True)
        (sub / f"{kind.__name__.removesuffix('_file')}{i:04d}.nix").write_text(text)
    return seeded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-peer", action="store_true", help="skip the nix-instantiate loop")
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hlplay-audit-bench-") as tmp:
        root = Path(tmp)
        seeded = generate(root, opts.files, opts.seed)
        files = sorted(root.rglob("*.nix"))
        lines = sum(p.read_text().count("\n") for p in files)
        print(f"generated {len(files)} files, {lines} lines ({lines // len(files)} per file), "
              f"{seeded} with a seeded problem")

        t0 = time.perf_counter()
        from hlplay.audit import Severity, audit
        from hlplay.audit.runner import AuditOptions

        report = audit([root], AuditOptions(threshold=Severity.INFO))
        ours = time.perf_counter() - t0
        by_rule = Counter(f.rule for f in report.findings)
        print(f"hlplay audit:            {ours:7.3f} s  ({report.files} files, "
              f"{len(report.findings)} findings, {ours / report.files * 1000:.2f} ms/file)")
        rules = ", ".join(f"{r} {n}" for r, n in sorted(by_rule.items()))
        print(f"  findings by rule:      {rules}")
        print(f"  seeded problems:       {seeded} planted, {len(report.findings)} reported")
        verdict = "under" if ours < 5 else "OVER"
        print(f"  target 5 s:            {verdict}")

        nix = shutil.which("nix-instantiate")
        if opts.no_peer or nix is None:
            print("nix-instantiate --parse: " + ("skipped" if opts.no_peer else "not installed"))
            return
        t0 = time.perf_counter()
        failures = 0
        for path in files:
            proc = subprocess.run([nix, "--parse", str(path)], capture_output=True)
            failures += proc.returncode != 0
        peer = time.perf_counter() - t0
        print(f"nix-instantiate --parse: {peer:7.3f} s  ({len(files)} files, syntax only, "
              f"{failures} rejected, {peer / len(files) * 1000:.2f} ms/file)")
        print(f"ratio:                   {peer / ours:7.1f}x faster than the nix-instantiate loop")


if __name__ == "__main__":
    main()
