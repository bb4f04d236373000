"""Nix's version ordering, as ``builtins.compareVersions`` and ``nix-env -u`` use it.

A version splits into components at ``.`` and ``-``; a component is a run of
digits or a run of anything else. Components compare pairwise, the shorter
version padded with empty components:

* two numbers compare numerically (``1.10`` > ``1.9``; ``01`` equals ``1``);
* ``pre`` is below everything else (``1.0pre1`` < ``1.0``);
* any other word is below any number (``2.3a`` < ``2.3.1``), and words compare
  as byte strings; the empty padding component is the smallest word
  (``1.0`` < ``1.0a``) and below any number (``1.0`` < ``1.0.0``).

Nix reads a digit run as a C ``int``: one too large for that (more than
2147483647) is compared as a word, which this module reproduces.
"""

from __future__ import annotations

import functools

_INT_MAX = 2**31 - 1
_SEPARATORS = ".-"

# A component's sort key: (rank, number, word). pre < words < numbers.
ComponentKey = tuple[int, int, str]
_PRE: ComponentKey = (0, 0, "")
_END: ComponentKey = (1, 0, "")  # the empty component a shorter version is padded with


def components(version: str) -> list[str]:
    """Split ``version`` into Nix's components: ``"1.2pre3-rc"`` -> 1 2 pre 3 rc."""
    out: list[str] = []
    i, n = 0, len(version)
    while i < n:
        ch = version[i]
        if ch in _SEPARATORS:
            i += 1
            continue
        start = i
        if ch.isascii() and ch.isdigit():
            while i < n and version[i].isascii() and version[i].isdigit():
                i += 1
        else:
            while (
                i < n
                and version[i] not in _SEPARATORS
                and not (version[i].isascii() and version[i].isdigit())
            ):
                i += 1
        out.append(version[start:i])
    return out


def _component_key(comp: str) -> ComponentKey:
    if comp.isascii() and comp.isdigit():
        value = int(comp)
        if value <= _INT_MAX:
            return (2, value, "")
    if comp == "pre":
        return _PRE
    return (1, 0, comp)


@functools.lru_cache(maxsize=65536)
def version_key(version: str) -> tuple[ComponentKey, ...]:
    """A key that sorts versions as Nix does (versions Nix calls equal get equal keys).

    Every key ends in the padding component, so a version that is a prefix of
    another compares the way Nix pads it: ``1.0`` < ``1.0.1`` but ``1.0pre`` < ``1.0``.
    """
    return (*(_component_key(c) for c in components(version)), _END)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, exactly as ``builtins.compareVersions a b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def sort_versions(versions: list[str] | tuple[str, ...]) -> list[str]:
    """Versions in ascending Nix order; equal versions in string order, for stable output."""
    return sorted(versions, key=lambda v: (version_key(v), v))
