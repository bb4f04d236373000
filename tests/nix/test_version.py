"""Nix's version ordering, checked against builtins.compareVersions of a real Nix."""

from __future__ import annotations

import functools
import itertools
import json
import random
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

import realparts
from hlplay.nix.version import compare_versions, components, sort_versions

# (a, b, what Nix answers for compareVersions a b)
TRICKY: list[tuple[str, str, int]] = [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.01", "1.1", 0),  # leading zeros: numerically equal
    ("1.0pre", "1.0", -1),
    ("1.0pre1", "1.0pre2", -1),
    ("1.0-pre", "1.0", -1),
    ("pre", "", -1),
    ("2.3a", "2.3.1", -1),  # a word is below a number
    ("2.3a", "2.3", 1),  # ... but above nothing
    ("1.0", "1.0.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0b", -1),
    ("1.0rc1", "1.0", 1),  # only "pre" is special, rc is an ordinary word
    ("1.0alpha", "1.0beta", -1),
    ("1.0.", "1.0", 0),
    ("1-0", "1.0", 0),
    ("1_2", "1.2", -1),  # "_" is part of a word, not a separator
    ("5.2p26", "5.2p3", 1),
    ("5.2p26", "5.2", 1),
    ("2147483647", "2147483646", 1),
    ("2147483648", "5", -1),  # too big for an int: compared as a word
    ("99999999999", "abc", -1),
    ("20240101", "20231231", 1),
    ("unstable-2024-01-01", "unstable-2023-12-31", 1),
    ("0-unstable-2024-01-01", "1.0", -1),
    ("24.05.20240101.abcdef", "24.05.20240102.012345", -1),
    ("", "", 0),
    ("", "0", -1),
    ("a", "B", 1),  # words compare as bytes
    ("1.0+git", "1.0", 1),
    ("3.0.13-bin", "3.0.14", -1),
    ("3.0.13", "3.0.13-bin", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), TRICKY)
def test_tricky_pairs(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_components() -> None:
    assert components("1.2pre3-rc") == ["1", "2", "pre", "3", "rc"]
    assert components("5.2p26") == ["5", "2", "p", "26"]
    assert components("..1--a_b.") == ["1", "a_b"]
    assert components("") == []


def test_sort_versions_is_nix_order_then_text() -> None:
    assert sort_versions(["1.10", "1.9", "1.0pre", "1.0", "1.01", "1.1"]) == [
        "1.0pre",
        "1.0",
        "1.01",
        "1.1",
        "1.9",
        "1.10",
    ]


def _nix_compare(pairs: list[tuple[str, str]]) -> list[int]:
    """One ``nix eval`` for all pairs: evaluating is cheap, starting Nix is not."""
    listing = " ".join(f"[{json.dumps(a)} {json.dumps(b)}]" for a, b in pairs)
    expr = (
        "map (p: builtins.compareVersions (builtins.elemAt p 0) (builtins.elemAt p 1)) "
        f"[ {listing} ]"
    )
    proc = subprocess.run(
        ["nix", "eval", "--json", "--expr", expr], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: list[int] = json.loads(proc.stdout)
    return result


@functools.cache
def _random_pairs() -> list[tuple[str, str]]:
    rng = random.Random(5)
    atoms = ["0", "1", "2", "9", "10", "01", "007", "pre", "a", "b", "rc", "p", "alpha", "_", "+"]
    atoms += ["2147483647", "2147483648", "123456789012", ""]
    seps = [".", "-", "", ".."]

    def version() -> str:
        return "".join(rng.choice(atoms) + rng.choice(seps) for _ in range(rng.randint(0, 5)))

    pairs = [(version(), version()) for _ in range(400)]
    # Near misses too: a version against itself with one piece changed.
    for _ in range(200):
        v = version()
        pairs.append((v, v + rng.choice(atoms)))
    return pairs


def test_agrees_with_real_nix_on_tricky_and_random_pairs() -> None:
    realparts.require(realparts.nix_available(), "nix")
    pairs = [(a, b) for a, b, _ in TRICKY] + _random_pairs()
    nix = _nix_compare(pairs)
    ours = [compare_versions(a, b) for a, b in pairs]
    wrong = [(a, b, n, o) for (a, b), n, o in zip(pairs, nix, ours, strict=True) if n != o]
    assert wrong == []


VERSION_TEXT = st.text(alphabet="0123456789.-abpre_+", max_size=12)


@given(VERSION_TEXT, VERSION_TEXT)
def test_antisymmetric(a: str, b: str) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)


@given(VERSION_TEXT)
def test_reflexive(a: str) -> None:
    assert compare_versions(a, a) == 0


@given(VERSION_TEXT, VERSION_TEXT, VERSION_TEXT)
def test_transitive(a: str, b: str, c: str) -> None:
    x, y, z = sorted([a, b, c], key=functools.cmp_to_key(compare_versions))
    assert compare_versions(x, y) <= 0 and compare_versions(y, z) <= 0
    assert compare_versions(x, z) <= 0


@given(st.lists(VERSION_TEXT, max_size=8))
def test_sorting_agrees_with_pairwise_comparison(versions: list[str]) -> None:
    ordered = sort_versions(versions)
    for left, right in itertools.pairwise(ordered):
        assert compare_versions(left, right) <= 0
