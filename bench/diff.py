"""Closure diff speed: hlplay against ``nix store diff-closures`` on the same pair.

Builds (once, cached) two synthetic NixOS-like systems of about 3,000 store
paths each, a few hundred package changes apart (upgrades, downgrades,
additions, removals, and the rebuilds they cause in everything depending on
them), then times in one run:

* ``nix store diff-closures A B`` — Nix's own C++ command;
* hlplay's diff in-process, end to end (closure queries + diff + text), for each
  closure source (Nix database, ``nix path-info``, ``nix-store``);
* ``hlplay diff A B`` as a fresh process (interpreter start-up included), both
  the command alone and, when present, through the ``hlplay`` entry point.

Cases run interleaved, round after round, so a busy machine slows all alike;
medians and minimums are printed.

Packages are ``builtins.toFile`` store paths that refer to their dependencies
(no builder to run, so building 6,000 of them takes seconds); the ``sw`` and
the toplevel are real derivations, as on NixOS.

    python bench/diff.py [--packages 3000] [--changes 300] [--repeat 9] [--dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

NIX_CONFIG = "experimental-features = nix-command flakes\nsubstituters =\n"

WORDS = ["lib", "py", "gnu", "x", "perl", "font", "rust", "go", "node", "hs", "qt", "gtk"]


def _version(rng: random.Random) -> list[int]:
    return [rng.randint(0, 30), rng.randint(0, 20), rng.randint(0, 99)]


def _vtext(v: list[int]) -> str:
    return ".".join(map(str, v))


def generate(n: int, changes: int, seed: int = 3) -> str:
    """A Nix expression with attributes ``before`` and ``after``."""
    rng = random.Random(seed)
    names = [
        f"{rng.choice(WORDS)}{i}-{rng.choice(['core', 'utils', 'bin', 'data'])}" for i in range(n)
    ]
    versions = [_version(rng) for _ in range(n)]
    deps = [sorted(rng.sample(range(i), k=min(i, rng.randint(0, 4)))) for i in range(n)]
    selected = sorted(rng.sample(range(n), k=n // 20))

    changed = rng.sample(range(n), k=changes)
    removed = set(changed[: changes // 12])
    upgraded = changed[changes // 12 : changes - changes // 6]
    downgraded = changed[changes - changes // 6 :]
    versions_after = [list(v) for v in versions]
    for i in upgraded:
        versions_after[i][2] += 1
    for i in downgraded:
        versions_after[i][1] = max(0, versions_after[i][1] - 1)
        versions_after[i][2] += 100  # still a downgrade: the minor part decides
    added = list(range(n, n + changes // 12))

    lines = ["let", "  f = builtins.toFile;", "  sys = builtins.currentSystem;"]
    lines.append(
        "  mk = name: script: builtins.derivation { inherit name; system = sys; "
        'builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ]; };'
    )

    def side(tag: str, vers: list[list[int]], present: set[int], extra: list[int]) -> None:
        for i in range(n):
            if i not in present:
                continue
            refs = " ".join(f"${{{tag}{d}}}" for d in deps[i] if d in present)
            lines.append(f'  {tag}{i} = f "{names[i]}-{_vtext(vers[i])}" "{names[i]} {refs}";')
        pool = sorted(present)
        for j in extra:
            dep = rng.choice(pool)
            lines.append(f'  {tag}{j} = f "added{j}-1.0.{j % 7}" "added ${{{tag}{dep}}}";')

    before_present = set(range(n))
    after_present = before_present - removed
    side("b", versions, before_present, [])
    side("a", versions_after, after_present, added)

    def system(tag: str, present: set[int], extra: list[int]) -> None:
        sel = [i for i in selected if i in present] + extra
        links = "\n".join(f"    ln -s ${{{tag}{i}}} $out/{i}" for i in sel)
        # The root refers to every package nothing else needs, so all are in the closure.
        needed = {d for i in present for d in deps[i]}
        roots = " ".join(f"${{{tag}{i}}}" for i in sorted(present - needed))
        lines.append(f"  {tag}sw = mk \"system-path\" ''\n    mkdir $out\n{links}\n  '';")
        lines.append(f'  {tag}etc = f "etc" "{tag}";')
        lines.append(
            f"  {tag}top = mk \"nixos-system-bench-1.0\" ''\n    mkdir $out\n"
            f"    ln -s ${{{tag}sw}} $out/sw\n    ln -s ${{{tag}etc}} $out/etc\n"
            f"    echo {roots} > $out/deps\n  '';"
        )

    system("b", before_present, [])
    system("a", after_present, added)
    lines.append("in { before = btop; after = atop; }")
    return "\n".join(lines) + "\n"


def build(directory: Path, n: int, changes: int) -> tuple[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    key = f"{n}-{changes}"
    before, after = directory / f"before-{key}", directory / f"after-{key}"
    if before.exists() and after.exists():
        return os.path.realpath(before), os.path.realpath(after)
    expr = directory / f"systems-{key}.nix"
    expr.write_text(generate(n, changes))
    start = time.monotonic()
    for name, link in (("before", before), ("after", after)):
        subprocess.run(
            ["nix-build", str(expr), "-A", name, "--out-link", str(link), "--quiet"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(f"built both systems in {time.monotonic() - start:.1f}s (cached in {directory})")
    return os.path.realpath(before), os.path.realpath(after)


def measure(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Run every case once per round, interleaved, so load on the machine hits all alike."""
    for fn in cases.values():
        fn()  # warm the page cache and the OS
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=3000)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "hlplay-bench"
        / "diff",
    )
    args = parser.parse_args()
    os.environ.setdefault("NIX_CONFIG", NIX_CONFIG)
    for tool in ("nix", "nix-build"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: this benchmark needs Nix")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from hlplay.nix.closure import closure
    from hlplay.nix.diff import diff_closures

    a, b = build(args.dir, args.packages, args.changes)

    def ours(method: str) -> Callable[[], object]:
        return lambda: diff_closures(
            closure(a, method=method), closure(b, method=method)
        ).render_text()

    def nix() -> None:
        subprocess.run(["nix", "store", "diff-closures", a, b], check=True, capture_output=True)

    cli_argv = [
        sys.executable,
        "-c",
        "import sys; from hlplay.cli.diff_paths import diff_paths_command; "
        "diff_paths_command(sys.argv[1:])",
        a,
        b,
    ]

    def cli() -> None:
        subprocess.run(cli_argv, check=True, capture_output=True)

    diff = diff_closures(closure(a), closure(b))
    nix_lines = subprocess.run(
        ["nix", "store", "diff-closures", a, b], check=True, capture_output=True, text=True
    ).stdout.count("\n")
    print(
        f"closures: {diff.before_paths} -> {diff.after_paths} paths "
        f"({diff.paths_added} added, {diff.paths_removed} removed); "
        f"{len(diff.changes)} version changes, {len(diff.added)} added, "
        f"{len(diff.removed)} removed packages; nix diff-closures prints {nix_lines} lines"
    )

    cases: dict[str, Callable[[], object]] = {
        "nix store diff-closures (process)": nix,
        "hlplay diff A B (process)": cli,
        "hlplay diff, in-process, auto (sqlite)": ours("auto"),
        "hlplay diff, in-process, nix path-info": ours("path-info"),
        "hlplay diff, in-process, nix-store -qR": ours("nix-store"),
    }
    entry = Path(sys.executable).with_name("hlplay")
    if entry.exists() and importlib.util.find_spec("hlplay.cli.nix_cmd") is not None:
        # The whole CLI, as a user types it (its own start-up included).
        cases["hlplay diff A B (entry point)"] = lambda: subprocess.run(
            [str(entry), "diff", a, b], check=True, capture_output=True
        )
    samples = measure(cases, args.repeat)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    mins = {name: min(s) for name, s in samples.items()}
    nix_name = "nix store diff-closures (process)"
    width = max(map(len, cases))
    print(f"{args.repeat} interleaved rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"  {'':<{width}}  {'median':>9}  {'min':>9}  nix/this (median, min)")
    for name in cases:
        print(
            f"  {name:<{width}}  {medians[name] * 1000:7.1f}ms  {mins[name] * 1000:7.1f}ms"
            f"  {medians[nix_name] / medians[name]:5.2f}x {mins[nix_name] / mins[name]:5.2f}x"
        )
    print(
        json.dumps(
            {
                "paths": [diff.before_paths, diff.after_paths],
                "median_ms": {k: round(v * 1000, 1) for k, v in medians.items()},
                "min_ms": {k: round(v * 1000, 1) for k, v in mins.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
