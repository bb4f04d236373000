"""flake.lock reading and diffing: what moved, from which pin and date to which."""

from __future__ import annotations

import json

import pytest

from hlplay.nix.flakelock import LockError, diff_locks, parse_lock, render_changes


def lock(nodes: dict, root_inputs: dict, version: int = 7) -> str:
    all_nodes = dict(nodes)
    all_nodes["root"] = {"inputs": root_inputs}
    return json.dumps({"nodes": all_nodes, "root": "root", "version": version})


NIXPKGS_OLD = {
    "locked": {
        "lastModified": 1714560000,
        "narHash": "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "3d2d8f281a27d466fa54b469b5993f7dde198375",
        "type": "github",
    },
    "original": {"owner": "NixOS", "ref": "nixos-24.05", "repo": "nixpkgs", "type": "github"},
}
NIXPKGS_NEW = {
    "locked": {
        **NIXPKGS_OLD["locked"],
        "lastModified": 1716192780,
        "narHash": "sha256-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=",
        "rev": "a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
    },
    "original": NIXPKGS_OLD["original"],
}
HM = {
    "inputs": {"nixpkgs": ["nixpkgs"]},  # follows the root's nixpkgs
    "locked": {
        "lastModified": 1714000000,
        "narHash": "sha256-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=",
        "owner": "nix-community",
        "repo": "home-manager",
        "rev": "1" * 40,
        "type": "github",
    },
    "original": {"owner": "nix-community", "repo": "home-manager", "type": "github"},
}
UPSTREAM = {
    "flake": False,
    "locked": {
        "lastModified": 1795316349,
        "narHash": "sha256-HsGUPqwIAu9IiceG4pFoeHdusW9mm5LoSK7fbmyIxsE=",
        "path": "/srv/upstream",
        "type": "path",
    },
    "original": {"path": "/srv/upstream", "type": "path"},
}


def test_moved_git_input_reports_revisions_and_dates() -> None:
    old = parse_lock(
        lock(
            {"nixpkgs": NIXPKGS_OLD, "home-manager": HM},
            {"nixpkgs": "nixpkgs", "home-manager": "home-manager"},
        )
    )
    new = parse_lock(
        lock(
            {"nixpkgs": NIXPKGS_NEW, "home-manager": HM},
            {"nixpkgs": "nixpkgs", "home-manager": "home-manager"},
        )
    )
    # a "follows" input holds no lock of its own
    assert list(old.inputs) == ["nixpkgs", "home-manager"]
    assert old.root_names == ("nixpkgs", "home-manager")
    changes = diff_locks(old, new)
    assert [c.path for c in changes] == ["nixpkgs"]
    text = render_changes(changes)
    assert text == (
        "• nixpkgs (github:NixOS/nixpkgs/nixos-24.05): "
        "3d2d8f281a27 2024-05-01 10:40 → a3a3dda3bacf 2024-05-20 08:13"
    )
    doc = changes[0].to_dict()
    assert doc["from"]["rev"] == NIXPKGS_OLD["locked"]["rev"]
    assert doc["to"]["lastModified"] == 1716192780
    assert doc["to"]["date"] == "2024-05-20 08:13"


def test_path_input_moves_by_nar_hash() -> None:
    moved = {
        **UPSTREAM,
        "locked": {
            **UPSTREAM["locked"],
            "lastModified": 1795316700,
            "narHash": "sha256-33gM8LlNmPqTxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
        },
    }
    old = parse_lock(lock({"upstream": UPSTREAM}, {"upstream": "upstream"}))
    new = parse_lock(lock({"upstream": moved}, {"upstream": "upstream"}))
    (change,) = diff_locks(old, new)
    assert change.kind == "updated"
    assert change.render() == (
        "• upstream (path:/srv/upstream): narHash sha256-HsGUPqwIAu9I… 2026-11-22 02:59"
        " → sha256-33gM8LlNmPqT… 2026-11-22 03:05"
    )


def test_added_removed_and_nested_inputs() -> None:
    nested_old = {**HM, "inputs": {"utils": "utils"}}
    utils = {
        "locked": {
            "lastModified": 1,
            "narHash": "sha256-x",
            "type": "github",
            "owner": "o",
            "repo": "u",
            "rev": "2" * 40,
        },
        "original": {"type": "github", "owner": "o", "repo": "u"},
    }
    utils2 = {**utils, "locked": {**utils["locked"], "rev": "3" * 40}}
    old = parse_lock(
        lock(
            {"home-manager": nested_old, "utils": utils, "nixpkgs": NIXPKGS_OLD},
            {"home-manager": "home-manager", "nixpkgs": "nixpkgs"},
        )
    )
    new = parse_lock(
        lock(
            {"home-manager": nested_old, "utils": utils2, "upstream": UPSTREAM},
            {"home-manager": "home-manager", "upstream": "upstream"},
        )
    )
    changes = {c.path: c.kind for c in diff_locks(old, new)}
    assert changes == {"home-manager/utils": "updated", "upstream": "added", "nixpkgs": "removed"}
    assert render_changes([]) == "no input moved"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('{"nodes": {', "flake.lock:1:12", "not valid JSON"),
        (
            '{"nodes": {}, "root": "root", "version": 3}',
            "flake.lock",
            "unsupported lock file version 3",
        ),
        ('{"nodes": {"x": {}}, "root": "root", "version": 7}', "flake.lock", "no root node"),
        (
            '{"nodes": {"root": {"inputs": {"a": "gone"}}}, "root": "root", "version": 7}',
            "flake.lock",
            "missing node 'gone'",
        ),
    ],
)
def test_bad_lock_files_are_one_line_errors(text: str, where: str, what: str) -> None:
    with pytest.raises(LockError) as err:
        parse_lock(text)
    assert str(err.value).startswith(f"{where}: ")
    assert what in str(err.value)
    assert "\n" not in str(err.value)
