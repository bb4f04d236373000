"""Closures with NAR sizes: from the Nix database, nix path-info, nix-store, and JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from diff_scenarios import Scenarios, build_scenarios

import realparts
from hlplay.errors import HlplayError
from hlplay.nix.closure import (
    Closure,
    ClosureError,
    closure,
    closure_async,
    closure_from_path_info_json,
    local_db_path,
    parse_path_info_json,
    path_info_argv,
)

S = "/nix/store"
TOP = f"{S}/0c8a6ifzmhswqb1rpd0dznbk8msyxgxc-nixos-system-web1-24.05"
SW = f"{S}/1c8a6ifzmhswqb1rpd0dznbk8msyxgxc-system-path"
SSL = f"{S}/2c8a6ifzmhswqb1rpd0dznbk8msyxgxc-openssl-3.0.14"
CURL = f"{S}/3c8a6ifzmhswqb1rpd0dznbk8msyxgxc-curl-8.6.0"
ETC = f"{S}/4c8a6ifzmhswqb1rpd0dznbk8msyxgxc-etc"

# The same closure in the two shapes nix path-info --json has had.
INFOS = {
    TOP: {"narSize": 1000, "references": [SW, ETC]},
    SW: {"narSize": 200, "references": [CURL, SW]},
    CURL: {"narSize": 3000, "references": [SSL]},
    SSL: {"narSize": 5000, "references": []},
    ETC: {"narSize": 40, "references": [CURL]},
}
LIST_SHAPE = json.dumps(
    [{"path": p, "narHash": "sha256-x", "deriver": None, **v} for p, v in INFOS.items()]
)
OBJECT_SHAPE = json.dumps({p: {"narHash": "sha256-x", **v} for p, v in INFOS.items()})
# Some Nix versions write references as base names.
BASENAME_SHAPE = json.dumps(
    {
        p: {"narSize": v["narSize"], "references": [r.rpartition("/")[2] for r in v["references"]]}
        for p, v in INFOS.items()
    }
)


@pytest.mark.parametrize("text", [LIST_SHAPE, OBJECT_SHAPE, BASENAME_SHAPE])
def test_path_info_json_in_either_shape(text: str) -> None:
    cl = closure_from_path_info_json(text)
    assert cl.root == TOP  # the one path nothing refers to
    assert cl.sizes == {p: v["narSize"] for p, v in INFOS.items()}
    assert cl.disk_usage == 9240 and len(cl) == 5
    assert cl.root_references == {SW, ETC}
    # No sw link to read: the root's system-path stands in for it.
    assert cl.sw == SW
    assert cl.selected == {CURL, SW}


def test_explicit_root_and_sw() -> None:
    cl = closure_from_path_info_json(OBJECT_SHAPE, root=CURL, sw=None)
    assert cl.root == CURL and cl.sw is None and cl.selected == {SSL}
    cl = closure_from_path_info_json(OBJECT_SHAPE, root=TOP, sw=ETC)
    assert cl.sw == ETC and cl.selected == {CURL}


def test_without_system_path_the_root_references_are_selected() -> None:
    infos = {TOP: {"narSize": 1, "references": [CURL]}, CURL: {"narSize": 2, "references": []}}
    cl = closure_from_path_info_json(json.dumps(infos))
    assert cl.sw is None and cl.selected == {CURL}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "cannot read nix path-info output"),
        ("42", "neither a list nor an object"),
        ("[]", "lists no paths"),
        (json.dumps({TOP: None}), "is not valid"),
        (json.dumps([{"path": TOP, "valid": False}]), "is not valid"),
        (json.dumps([{"narSize": 1}]), "has no path"),
        (json.dumps({TOP: {"references": "x"}}), "bad references"),
        (
            json.dumps({TOP: {"references": []}, CURL: {"references": []}}),
            "2 roots; say which one",
        ),
    ],
)
def test_bad_path_info_json_is_a_one_line_error(text: str, message: str) -> None:
    with pytest.raises(ClosureError) as exc:
        closure_from_path_info_json(text)
    assert message in str(exc.value)
    assert isinstance(exc.value, HlplayError) and "\n" not in str(exc.value)


def test_root_missing_from_output() -> None:
    with pytest.raises(ClosureError, match="does not include the root"):
        closure_from_path_info_json(OBJECT_SHAPE, root=f"{S}/9c8a6ifzmhswqb1rpd0dznbk8msyxgxc-x")


def test_parse_keeps_references() -> None:
    parsed = parse_path_info_json(LIST_SHAPE)
    assert parsed[CURL] == (3000, [SSL])


def test_path_info_argv_with_a_store() -> None:
    argv = path_info_argv(TOP, "ssh-ng://root@web1")
    assert argv[0] == "nix" and argv[-1] == TOP
    assert argv[-3:-1] == ["--store", "ssh-ng://root@web1"]
    assert "--recursive" in argv and "--json" in argv


def test_local_db_only_for_the_default_local_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIX_REMOTE", "daemon")
    assert local_db_path() is None
    monkeypatch.delenv("NIX_REMOTE")
    assert local_db_path("ssh-ng://root@web1") is None
    monkeypatch.setenv("NIX_CONFIG", "store = /tmp/elsewhere\n")
    assert local_db_path() is None


# --- real Nix ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    realparts.require(realparts.nix_available(), "nix")
    return build_scenarios(tmp_path_factory.mktemp("diff-scenarios"))


def _nix_store(*args: str) -> list[str]:
    out = subprocess.run(["nix-store", *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_every_method_gives_the_same_closure(scen: Scenarios) -> None:
    root = scen["everything"]
    want_paths = set(_nix_store("-qR", root))
    results = {m: closure(root, method=m) for m in ("sqlite", "path-info", "nix-store", "auto")}
    for method, cl in results.items():
        assert cl.root == root, method
        assert cl.paths == want_paths, method
        assert cl.sw == os.path.realpath(os.path.join(root, "sw")), method
        assert cl.selected == set(_nix_store("-q", "--references", cl.sw)), method
        assert cl.root_references == set(_nix_store("-q", "--references", root)), method
    first = results["sqlite"]
    assert all(cl == first for cl in results.values())
    assert results["auto"].source == "sqlite"
    ordered = sorted(want_paths)
    sizes = dict(zip(ordered, map(int, _nix_store("-q", "--size", *ordered)), strict=True))
    assert first.sizes == sizes
    du = subprocess.run(
        ["nix", "path-info", "--closure-size", root], capture_output=True, text=True, check=True
    )
    assert first.disk_usage == int(du.stdout.split()[-1])


def test_profiles_links_and_files_resolve_to_the_store_path(scen: Scenarios) -> None:
    assert closure(str(scen.profile)).root == scen["upgrade"]
    assert closure(str(scen.profile) + "-1-link").root == scen["base"]
    assert closure(os.path.join(scen["base"], "deps")).root == scen["base"]  # a file inside
    link = scen.dir / "result-base"
    if not link.exists():
        link.symlink_to(scen["base"])
    assert closure(str(link)).root == scen["base"]


async def test_closure_async(scen: Scenarios) -> None:
    cl = await closure_async(scen["base"])
    assert cl.root == scen["base"] and len(cl) == 11


def test_unreadable_database_falls_back_to_the_cli(
    scen: Scenarios, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setenv("NIX_STATE_DIR", str(tmp_path))  # no database there
        assert local_db_path() is None
    monkeypatch.setattr("hlplay.nix.closure.local_db_path", lambda store=None: None)
    cl = closure(scen["base"])
    assert cl.source == "path-info" and cl == closure(scen["base"], method="nix-store")
    with pytest.raises(ClosureError, match="not readable"):
        closure(scen["base"], method="sqlite")


def test_corrupt_database_falls_back_to_the_cli(
    scen: Scenarios, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "db.sqlite").write_bytes(b"this is not a database" * 100)
    monkeypatch.setattr(
        "hlplay.nix.closure.local_db_path", lambda store=None: str(tmp_path / "db" / "db.sqlite")
    )
    cl = closure(scen["base"])
    assert cl.source == "path-info" and len(cl) == 11
    with pytest.raises(ClosureError, match="cannot read the Nix database"):
        closure(scen["base"], method="sqlite")


@pytest.mark.parametrize("method", ["auto", "sqlite", "path-info", "nix-store"])
def test_invalid_store_path_is_a_clear_error(scen: Scenarios, method: str) -> None:
    missing = "/nix/store/00000000000000000000000000000000-nothing-1.0"
    with pytest.raises(ClosureError) as exc:
        closure(missing, method=method)
    assert "\n" not in str(exc.value)
    assert "nothing-1.0" in str(exc.value)


def test_paths_outside_the_store_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ClosureError, match="no such file or store path"):
        closure(str(tmp_path / "absent"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ClosureError, match="is not in the Nix store"):
        closure(str(tmp_path / "file"))
    with pytest.raises(ClosureError, match="unknown closure method"):
        closure(str(tmp_path / "file"), method="magic")


def test_closure_equality_ignores_the_source() -> None:
    a = Closure(root=TOP, sizes={TOP: 1}, root_references=frozenset(), source="sqlite")
    b = Closure(root=TOP, sizes={TOP: 1}, root_references=frozenset(), source="path-info")
    assert a == b and TOP in a


def test_another_store_through_the_cli(scen: Scenarios, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    for name in ("base", "upgrade"):
        subprocess.run(
            ["nix", "copy", "--no-check-sigs", "--to", store, scen[name]],
            capture_output=True,
            check=True,
        )
    local = closure(scen["base"])
    for method in ("auto", "path-info", "nix-store"):
        there = closure(scen["base"], store, method=method)
        assert there.source == ("nix-store" if method == "nix-store" else "path-info")
        # The sw link is not read in another store: its system-path reference stands in.
        assert there == local, method
    with pytest.raises(ClosureError, match="not readable"):
        closure(scen["base"], store, method="sqlite")
    with pytest.raises(ClosureError, match="is not valid"):
        closure(scen["removed"], store)

    from hlplay.nix.diff import diff_paths

    remote = diff_paths(scen["base"], scen["upgrade"], store)
    assert remote.to_json() == diff_paths(scen["base"], scen["upgrade"]).to_json()
