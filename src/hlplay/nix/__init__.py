"""The Nix layer: store paths, version ordering, closures and nvd-style diffs.

The names below are imported on first use, so ``import hlplay.nix`` stays cheap::

    from hlplay.nix import diff_paths
    print(diff_paths("/nix/var/nix/profiles/system", "./result").render_text())

(The function ``closure`` shares its name with the module ``hlplay.nix.closure``,
so import it from there: ``from hlplay.nix.closure import closure``.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hlplay.nix.closure import (
        Closure,
        ClosureError,
        closure_async,
        closure_from_path_info_json,
        path_info_argv,
    )
    from hlplay.nix.diff import (
        ClosureDiff,
        PackageRow,
        diff_closures,
        diff_paths,
        diff_paths_async,
    )
    from hlplay.nix.storepath import StorePath, StorePathError, parse_store_path
    from hlplay.nix.version import compare_versions

_EXPORTS = {
    "Closure": "hlplay.nix.closure",
    "ClosureError": "hlplay.nix.closure",
    "closure_async": "hlplay.nix.closure",
    "closure_from_path_info_json": "hlplay.nix.closure",
    "path_info_argv": "hlplay.nix.closure",
    "ClosureDiff": "hlplay.nix.diff",
    "PackageRow": "hlplay.nix.diff",
    "diff_closures": "hlplay.nix.diff",
    "diff_paths": "hlplay.nix.diff",
    "diff_paths_async": "hlplay.nix.diff",
    "StorePath": "hlplay.nix.storepath",
    "StorePathError": "hlplay.nix.storepath",
    "parse_store_path": "hlplay.nix.storepath",
    "compare_versions": "hlplay.nix.version",
}

__all__ = [
    "Closure",
    "ClosureDiff",
    "ClosureError",
    "PackageRow",
    "StorePath",
    "StorePathError",
    "closure_async",
    "closure_from_path_info_json",
    "compare_versions",
    "diff_closures",
    "diff_paths",
    "diff_paths_async",
    "parse_store_path",
    "path_info_argv",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hlplay.nix' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
