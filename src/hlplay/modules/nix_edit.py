"""``nix_edit``: set a package's version and source hash in the configuration.

::

    - nix_edit:
        package: webui-lite       # attribute name or pname
        version: "1.1"
        # hash: sha256-…          # default: computed with Nix from the new source
        # file: pkgs/webui.nix    # when the name is defined in several files
      register: edit

Finds the package in the repository's ``.nix`` files (see
:mod:`hlplay.nix.pkgedit`), works out the new version's source (``${version}``
in its ``path`` or ``url``), hashes it with Nix (``nix hash file``/``nix hash
path`` for local files, ``nix-prefetch-url`` for URLs) in the notation the file
already uses, and writes both into the file's text.

Like ``flake_update``, it leaves the working tree alone (unless ``write: true``):
the edited file goes into a *candidate* commit (``edit.candidate``) for hosts
to build, and ``update_commit`` commits it for good. A bad package name, a version with no
source, or a source Nix cannot hash fails the task with one line and changes
nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar

from hlplay.errors import HlplayError
from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext
from hlplay.modules.flake_update import repo_dir


class NixEdit(Module):
    name = "nix_edit"
    summary = "Set a package's version and source hash (computed with Nix) in its Nix file."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "package": Arg("str", required=True, help="attribute name or pname"),
        "version": Arg("str", required=True),
        "hash": Arg("str", help="the new source hash (default: computed with Nix)"),
        "repo": Arg("path", help="the configuration (default: the inventory's nix.flake)"),
        "file": Arg("path", help="the file defining the package, relative to the repo"),
        "candidate": Arg("bool", default=True, help="make a candidate commit with the edit"),
        "write": Arg("bool", default=False, help="also write the file (not under --check)"),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.nix import candidate as cand
        from hlplay.nix import pkgedit, prefetch

        package, version = str(args["package"]), str(args["version"])
        try:
            repo = repo_dir(ctx, args.get("repo")).resolve()
            pkgedit.validate_version(version)
            site = pkgedit.find_package(repo, package, args.get("file"))
            rel = str(site.file.relative_to(repo))
            new_hash: str | None = None
            source: str | None = None
            if site.hash is not None:
                fmt = prefetch.hash_format(site.hash.value) or (
                    "sri" if site.hash_attr == "hash" else "base32"
                )
                if args.get("hash"):
                    try:
                        new_hash = prefetch.parse_hash(str(args["hash"])).as_format(fmt)
                    except ValueError as exc:
                        return ModuleResult(failed=True, msg=f"argument 'hash': {exc}")
                else:
                    source = pkgedit.source_for(site, version, repo)
                    new_hash = (await _hash(site, source)).as_format(fmt)
            elif args.get("hash"):
                return ModuleResult(
                    failed=True, msg=f"{rel}: package '{package}' has no source hash to set"
                )
            old_bytes = site.file.read_bytes()
            new_bytes = pkgedit.edit(site, version, new_hash)
        except HlplayError as exc:
            return ModuleResult(failed=True, msg=str(exc))
        data: dict[str, Any] = {
            "package": package,
            "file": rel,
            "line": site.version.line,
            "old_version": site.version.value,
            "version": version,
            "hash_attr": site.hash_attr,
            "old_hash": site.hash.value if site.hash else None,
            "hash": new_hash,
            "source": source,
            "files": [rel],
            "candidate": None,
        }
        if new_bytes == old_bytes:
            return ModuleResult(msg=f"{package} is at {version} already", data=data)
        diff = "".join(
            difflib.unified_diff(
                old_bytes.decode(errors="replace").splitlines(keepends=True),
                new_bytes.decode(errors="replace").splitlines(keepends=True),
                f"a/{rel}", f"b/{rel}",
            )
        )
        title = f"{package}: {site.version.value} -> {version}"
        data["text"] = f"{rel}: version {site.version.value} -> {version}" + (
            f"\n{rel}: {site.hash_attr} {site.hash.value} -> {new_hash}"
            if site.hash is not None and new_hash else ""
        )
        if args.get("candidate", True):
            try:
                made = await cand.make(str(repo), {rel: new_bytes}, title)
            except HlplayError as exc:
                return ModuleResult(failed=True, msg=str(exc), data=data)
            data.update(candidate=made.sha, base=made.parent)
        if args.get("write") and not ctx.check_mode:
            site.file.write_bytes(new_bytes)
            data["written"] = True
        hash_note = f", {site.hash_attr} {new_hash}" if new_hash else " (no source hash)"
        return ModuleResult(changed=True, msg=f"{title} in {rel}{hash_note}", diff=diff, data=data)


async def _hash(site: Any, source: str) -> Any:
    from hlplay.nix import prefetch

    spec = site.source
    if spec.kind == "url":
        return await prefetch.prefetch_url(source, unpack=spec.unpack)
    return await prefetch.hash_path(Path(source), recursive=spec.recursive)
