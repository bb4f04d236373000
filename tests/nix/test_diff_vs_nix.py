"""Our diff finds the same version changes as Nix's own ``nix store diff-closures``.

Nix groups by its own name rule and strips output names (``-bin``), and lists
version *sets*; so the comparison is per package name: the versions that went
away and the versions that came. Selection state is nvd's idea and has no
counterpart in Nix.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from diff_scenarios import NAMES, Scenarios, build_scenarios

import realparts
from hlplay.nix.diff import ClosureDiff, diff_paths
from hlplay.nix.storepath import KNOWN_OUTPUTS

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SIZE = re.compile(r",? ?[+-][0-9.]+ KiB$")

Change = tuple[frozenset[str], frozenset[str]]  # (versions gone, versions new)


@pytest.fixture(scope="session")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    realparts.require(realparts.nix_available(), "nix")
    return build_scenarios(tmp_path_factory.mktemp("diff-scenarios"))


def _versions(text: str) -> frozenset[str]:
    text = text.strip()
    if text == "∅":
        return frozenset()
    return frozenset("" if v == "ε" else v for v in text.split(", "))


def nix_changes(a: str, b: str) -> dict[str, Change]:
    proc = subprocess.run(
        ["nix", "store", "diff-closures", a, b], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Change] = {}
    for line in ANSI.sub("", proc.stdout).splitlines():
        name, _, rest = line.strip().partition(": ")
        rest = SIZE.sub("", rest)
        if "→" not in rest:
            continue  # a size change only
        gone, new = rest.split("→")
        out[name] = (_versions(gone), _versions(new))
    return out


def _strip_output(version: str) -> str:
    head, dash, last = version.rpartition("-")
    return head if dash and last in KNOWN_OUTPUTS else version


def our_changes(diff: ClosureDiff) -> dict[str, Change]:
    out: dict[str, Change] = {}
    for row in (*diff.changes, *diff.added, *diff.removed):
        before = {_strip_output(v) for v in row.before}
        after = {_strip_output(v) for v in row.after}
        if before != after:
            out[row.pname] = (frozenset(before - after), frozenset(after - before))
    return out


PAIRS = [("base", name) for name in NAMES] + [
    ("everything", "base"),
    ("upgrade", "downgrade"),
    ("selection", "everything"),
]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_same_changes_as_nix_store_diff_closures(scen: Scenarios, a: str, b: str) -> None:
    ours = our_changes(diff_paths(scen[a], scen[b]))
    assert ours == nix_changes(scen[a], scen[b])


def test_comparison_is_not_vacuous(scen: Scenarios) -> None:
    nix = nix_changes(scen["base"], scen["everything"])
    assert nix["openssl"] == (frozenset({"3.0.13"}), frozenset({"3.0.14"}))
    assert nix["multi"] == (frozenset({"1.0", "2.0"}), frozenset({"1.5", "3.0"}))
    assert nix["tool"] == (frozenset(), frozenset({"1.0"}))
    assert set(nix) == {"curl", "multi", "newlib", "openssl", "tool", "vim"}
