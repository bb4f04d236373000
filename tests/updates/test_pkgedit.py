"""Finding a package's version and source hash in Nix files, and editing them in place."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from hlplay.lab.configrepo import template_dir
from hlplay.nix import pkgedit
from hlplay.nix.pkgedit import PackageError, edit, find_package, known_packages, source_for
from hlplay.nix.prefetch import Hashes


@pytest.fixture
def config(tmp_path: Path) -> Path:
    repo = tmp_path / "config"
    shutil.copytree(template_dir(), repo)
    return repo


def test_finds_a_package_in_the_file_it_imports(config: Path) -> None:
    site = find_package(config, "webui-lite")
    assert site.file == config / "pkgs" / "webui-lite.nix"
    assert (site.version.value, site.version.line, site.version.column) == ("1.0", 3, 14)
    assert site.hash_attr == "sha256"
    assert site.hash is not None and site.hash.value.startswith("1zpsf4kk")
    assert site.source is not None
    assert (site.source.kind, site.source.template, site.source.recursive) == (
        "path",
        "../src/webui-${version}.txt",
        False,
    )
    assert source_for(site, "1.1", config) == str(config / "src" / "webui-1.1.txt")


def test_edit_changes_only_the_two_literals(config: Path) -> None:
    site = find_package(config, "motd")
    before = site.file.read_text()
    new_hash = Hashes(
        hashlib.sha256((config / "src" / "motd-1.1.txt").read_bytes()).digest()
    ).base32
    after = edit(site, "1.1", new_hash).decode()
    assert after == before.replace('"1.0"', '"1.1"').replace(site.hash.value, new_hash)  # type: ignore[union-attr]


def test_inline_package_without_a_source(config: Path) -> None:
    site = find_package(config, "nginx-lite")
    assert site.file.name == "default.nix"
    assert site.version.value == "1.24.0"
    assert site.hash is None and site.source is None
    text = edit(site, "1.25.3", None).decode()
    assert 'nginx-lite = lib.mkPackage { pname = "nginx-lite"; version = "1.25.3"; };' in text
    assert text.count("1.25.3") == 1


def test_fetchurl_with_an_sri_hash_found_by_pname(tmp_path: Path) -> None:
    (tmp_path / "hello.nix").write_text(
        "{ stdenv, fetchurl }:\n"
        "stdenv.mkDerivation rec {\n"
        '  pname = "hello";\n'
        '  version = "2.12";\n'
        "  src = fetchurl {\n"
        '    url = "mirror://gnu/hello/hello-${version}.tar.gz";\n'
        '    hash = "sha256-jZkUKv2SV28wsM18tCqNxoCZmLxdYH2Idh9RLibH2yA=";\n'
        "  };\n"
        "}\n"
    )
    site = find_package(tmp_path, "hello")
    assert site.hash_attr == "hash"
    assert site.source is not None and site.source.kind == "url" and not site.source.unpack
    assert source_for(site, "2.13", tmp_path) == "mirror://gnu/hello/hello-2.13.tar.gz"


def test_fetchzip_hashes_the_unpacked_tree(tmp_path: Path) -> None:
    (tmp_path / "default.nix").write_text(
        "{ pkgs }: {\n"
        "  tool = pkgs.stdenv.mkDerivation {\n"
        '    pname = "tool"; version = "0.3";\n'
        '    src = pkgs.fetchzip { url = "https://example.org/tool-${version}.zip";\n'
        '      sha256 = "0000000000000000000000000000000000000000000000000000"; };\n'
        "  };\n"
        "}\n"
    )
    site = find_package(tmp_path, "tool")
    assert site.source is not None and site.source.unpack and site.source.fetcher == "pkgs.fetchzip"


def test_unknown_package_suggests_the_close_one(config: Path) -> None:
    with pytest.raises(PackageError) as err:
        find_package(config, "webui")
    msg = str(err.value)
    assert msg.startswith("unknown package 'webui' (did you mean 'webui-lite'?)")
    assert "\n" not in msg
    assert "webui-lite" in known_packages(config) and "pkgs" not in known_packages(config)


def test_version_without_a_source_file(config: Path) -> None:
    site = find_package(config, "webui-lite")
    with pytest.raises(PackageError) as err:
        source_for(site, "9.9", config)
    assert str(err.value) == (
        "webui-lite 9.9: no source src/webui-9.9.txt "
        "(from ../src/webui-${version}.txt in pkgs/webui-lite.nix:9)"
    )


def test_unknowable_interpolation_asks_for_the_hash(tmp_path: Path) -> None:
    (tmp_path / "x.nix").write_text(
        '{ fetchurl, mirror }: { x = { pname = "x"; version = "1"; src = fetchurl {\n'
        '  url = "${mirror}/x-${version}.tgz"; sha256 = "abc"; }; }; }\n'
    )
    site = find_package(tmp_path, "x")
    with pytest.raises(PackageError, match=r"interpolates 'mirror'.*give the new hash by hand"):
        source_for(site, "2", tmp_path)


def test_a_package_defined_twice_must_be_named_by_file(tmp_path: Path) -> None:
    for name in ("a.nix", "b.nix"):
        (tmp_path / name).write_text('{ x = { pname = "x"; version = "1"; }; }\n')
    with pytest.raises(PackageError, match=r"defined in several files \(a.nix, b.nix\)"):
        find_package(tmp_path, "x")
    assert find_package(tmp_path, "x", "b.nix").file.name == "b.nix"


@pytest.mark.parametrize("bad", ["", '1.0"; x = "', "${evil}", "1 0", "-1", "a" * 80])
def test_versions_that_could_inject_nix_are_refused(config: Path, bad: str) -> None:
    site = find_package(config, "motd")
    with pytest.raises(PackageError, match="invalid version"):
        edit(site, bad, None)


def test_unparsable_files_are_skipped_not_fatal(config: Path) -> None:
    (config / "broken.nix").write_text("{ this is = not nix")
    assert find_package(config, "motd").version.value == "1.0"
    assert pkgedit.VERSION_RE.match("2.4.1-rc1+git")
