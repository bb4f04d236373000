"""Small NixOS-like systems built with real Nix, for the closure diff tests.

Every system is a toplevel ``nixos-system-test-1.0`` with an ``sw`` (the
selected packages, like ``environment.systemPackages``), an ``etc`` and a file
referring to the packages that are only dependencies. All scenarios build with
one ``nix-build`` of an index derivation that links each system by name.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

EXPR = r"""
let
  system = builtins.currentSystem;
  mk = name: script: builtins.derivation {
    inherit name system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" script ];
  };
  pkg = name: deps: mk name "echo ${name} ${toString deps} > $out";
  links = ps: builtins.concatStringsSep "\n" (map (p: "ln -s ${p} $out/${p.name}") ps);
  mkSystem = tag: selected: others:
    let
      sw = mk "system-path" "mkdir $out\n${links selected}";
      etc = mk "etc" "echo ${tag} > $out";
    in mk "nixos-system-test-1.0" ''
      mkdir $out
      ln -s ${sw} $out/sw
      ln -s ${etc} $out/etc
      echo ${toString others} > $out/deps
    '';

  libz = pkg "libz-1.2.13" [ ];
  ssl13 = pkg "openssl-3.0.13" [ libz ];
  ssl13bin = pkg "openssl-3.0.13-bin" [ ssl13 ];
  ssl14 = pkg "openssl-3.0.14" [ libz ];
  ssl14bin = pkg "openssl-3.0.14-bin" [ ssl14 ];
  curl85 = pkg "curl-8.5.0" [ ssl13 ssl13bin libz ];
  curl86 = pkg "curl-8.6.0" [ ssl14 ssl14bin libz ];
  hello = pkg "hello-2.12" [ ];
  vim91 = pkg "vim-9.1" [ ];
  vim90 = pkg "vim-9.0" [ ];
  tool = pkg "tool-1.0" [ newlib ];
  newlib = pkg "newlib-0.1" [ ];
  multiA = pkg "multi-1.0" [ ];
  multiB = pkg "multi-2.0" [ ];
  multiC = pkg "multi-1.5" [ ];
  multiD = pkg "multi-3.0" [ ];

  base = mkSystem "base" [ hello curl85 vim91 ] [ multiA multiB ];
  systems = {
    inherit base;
    identical = base;
    rebuilt = mkSystem "rebuilt" [ hello curl85 vim91 ] [ multiA multiB ];
    upgrade = mkSystem "base" [ hello curl86 vim91 ] [ multiA multiB ];
    downgrade = mkSystem "base" [ hello curl85 vim90 ] [ multiA multiB ];
    added = mkSystem "base" [ hello curl85 vim91 tool ] [ multiA multiB ];
    removed = mkSystem "base" [ curl85 vim91 ] [ multiA multiB ];
    selection = mkSystem "base" [ curl85 vim91 libz ] [ hello multiA multiB ];
    changed = mkSystem "base" [ hello curl85 vim91 ] [ multiC multiD ];
    everything = mkSystem "everything" [ curl86 vim90 tool libz ] [ hello multiC multiD ];
  };
in mk "diff-scenarios" ''
  mkdir $out
  ${builtins.concatStringsSep "\n"
      (map (n: "ln -s ${systems.${n}} $out/${n}") (builtins.attrNames systems))}
''
"""

NAMES = (
    "base",
    "identical",
    "rebuilt",
    "upgrade",
    "downgrade",
    "added",
    "removed",
    "selection",
    "changed",
    "everything",
)


@dataclass(frozen=True)
class Scenarios:
    """Store paths of the built systems, plus a profile holding base then upgrade."""

    dir: Path
    paths: dict[str, str]
    profile: Path

    def __getitem__(self, name: str) -> str:
        return self.paths[name]


_CACHE: dict[str, Scenarios] = {}


def build_scenarios(root: Path) -> Scenarios:
    """Build (once per test session) and return the scenario systems."""
    if "s" in _CACHE:
        return _CACHE["s"]
    root.mkdir(parents=True, exist_ok=True)
    expr = root / "scenarios.nix"
    expr.write_text(EXPR)
    link = root / "index"
    proc = subprocess.run(
        ["nix-build", str(expr), "--out-link", str(link), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    paths = {name: os.path.realpath(link / name) for name in NAMES}
    profile = root / "profiles" / "system"
    profile.parent.mkdir()
    for name in ("base", "upgrade"):
        subprocess.run(
            ["nix-env", "-p", str(profile), "--set", paths[name]],
            capture_output=True,
            check=True,
        )
    _CACHE["s"] = Scenarios(dir=root, paths=paths, profile=profile)
    return _CACHE["s"]
