"""Store paths split into package name, version and output the way nvd splits them."""

from __future__ import annotations

import pytest

from hlplay.errors import HlplayError
from hlplay.nix.storepath import (
    StorePathError,
    base_path,
    parse_store_path,
    pname_version,
    try_parse_store_path,
)

H = "0c8a6ifzmhswqb1rpd0dznbk8msyxgxc"


@pytest.mark.parametrize(
    ("name", "pname", "version", "output"),
    [
        ("openssl-3.0.13", "openssl", "3.0.13", "out"),
        ("openssl-3.0.13-bin", "openssl", "3.0.13-bin", "bin"),
        ("openssl-3.0.13-dev", "openssl", "3.0.13-dev", "dev"),
        ("systemd-254.6-man", "systemd", "254.6-man", "man"),
        ("glibc-2.38-44-lib", "glibc", "2.38-44-lib", "lib"),
        ("python3.11-requests-2.31.0", "python3.11-requests", "2.31.0", "out"),
        ("python3-3.11.6", "python3", "3.11.6", "out"),
        (
            "nixos-system-web1-24.05.20240101.abcdef",
            "nixos-system-web1",
            "24.05.20240101.abcdef",
            "out",
        ),
        ("linux-6.1.55-modules", "linux", "6.1.55-modules", "out"),
        ("etc", "etc", "", "out"),
        ("system-units", "system-units", "", "out"),
        ("unit-dbus.service", "unit-dbus.service", "", "out"),
        ("source", "source", "", "out"),
        ("hello-2.12.1.drv", "hello", "2.12.1", "out"),
        ("x-1", "x", "1", "out"),
        ("font-3270-1.0", "font", "3270-1.0", "out"),
    ],
)
def test_name_splits_at_first_dash_before_a_digit(
    name: str, pname: str, version: str, output: str
) -> None:
    sp = parse_store_path(f"/nix/store/{H}-{name}")
    assert (sp.pname, sp.version, sp.output) == (pname, version, output)
    assert sp.hash == H
    assert sp.name == name
    assert pname_version(sp.path) == (pname, version)


def test_base_version_drops_the_output_suffix() -> None:
    assert parse_store_path(f"/nix/store/{H}-openssl-3.0.13-bin").base_version == "3.0.13"
    assert parse_store_path(f"/nix/store/{H}-openssl-3.0.13").base_version == "3.0.13"
    assert parse_store_path(f"/nix/store/{H}-linux-6.1-modules").base_version == "6.1-modules"


def test_drv_paths_are_marked() -> None:
    sp = parse_store_path(f"/nix/store/{H}-hello-2.12.drv")
    assert sp.is_drv and sp.pname == "hello" and sp.version == "2.12"


def test_file_inside_a_store_path_parses_as_its_top_level_path() -> None:
    sp = parse_store_path(f"/nix/store/{H}-bash-5.2p26/bin/bash")
    assert sp.path == f"/nix/store/{H}-bash-5.2p26"
    assert (sp.pname, sp.version) == ("bash", "5.2p26")
    assert base_path(f"/nix/store/{H}-bash-5.2p26/bin/bash") == sp.path


@pytest.mark.parametrize(
    "bad",
    [
        "/usr/bin/env",
        "/nix/store",
        "/nix/store/",
        "/nix/store/short-hello-1.0",
        f"/nix/store/{H}",
        f"/nix/store/{H}-",
        "/nix/store/0c8a6ifzmhswqb1rpd0dznbk8msyxgxe-hello-1.0",  # 'e' is not base-32
        f"/nix/store/{H}-bad name",
        f"/nix/store/{H}-.hidden",
        f"/nix/store/../../etc/{H}-x",
    ],
)
def test_not_a_store_path_is_a_clear_error(bad: str) -> None:
    with pytest.raises(StorePathError) as exc:
        parse_store_path(bad)
    assert isinstance(exc.value, HlplayError)
    assert "\n" not in str(exc.value)
    assert try_parse_store_path(bad) is None


def test_other_store_dir() -> None:
    sp = parse_store_path(f"/tmp/store/{H}-hello-1.0", store_dir="/tmp/store")
    assert sp.path == f"/tmp/store/{H}-hello-1.0" and sp.version == "1.0"
