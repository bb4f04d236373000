"""``nix_prefetch``: the hash Nix wants for a source, in base32, SRI and hex.

::

    - nix_prefetch:
        url: https://example.org/foo-1.2.tar.gz   # nix-prefetch-url (file:// works too)
        unpack: true                               # hash of the unpacked tree (fetchzip)
      register: src
    - nix_prefetch:
        path: files/motd-1.1.txt                   # nix hash file (flat) …
        recursive: false                           # … or nix hash path (NAR) with true
    - debug: msg="sha256 = {{ src.base32 }}; hash = {{ src.sri }}"

Runs on the controller; a relative ``path`` is relative to the playbook.
Read-only (a URL lands in the Nix store, as ``nix-prefetch-url`` does), so it
runs under ``--check`` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hlplay.modules.base import Arg, Module, ModuleResult, TaskContext


class NixPrefetch(Module):
    name = "nix_prefetch"
    summary = "Hash a URL or a local path with Nix; base32, SRI and hex."
    controller_side = True
    supports_check = True
    args: ClassVar[dict[str, Arg]] = {
        "url": Arg("str", help="http(s), ftp or file:// URL (nix-prefetch-url)"),
        "path": Arg("path", help="local file or directory (nix hash file / nix hash path)"),
        "unpack": Arg("bool", default=False, help="URL: hash the unpacked archive"),
        "recursive": Arg("bool", default=False, help="path: NAR hash (directories need it)"),
        "name": Arg("str", help="URL: store path name"),
        "timeout": Arg("float", default=600.0),
    }

    async def run(self, ctx: TaskContext, args: dict[str, Any]) -> ModuleResult:
        from hlplay.nix.prefetch import PrefetchError, hash_path, prefetch_url

        url, path = args.get("url"), args.get("path")
        if bool(url) == bool(path):
            return ModuleResult(failed=True, msg="give exactly one of 'url' and 'path'")
        timeout = float(args.get("timeout") or 600)
        try:
            if url:
                hashes = await prefetch_url(
                    str(url), unpack=bool(args.get("unpack")), name=args.get("name"),
                    timeout=timeout,
                )
                what = str(url)
            else:
                p = Path(str(path))
                if not p.is_absolute():
                    base = ctx.vars.get("playbook_dir")
                    p = Path(str(base)) / p if base else p.resolve()
                hashes = await hash_path(p, recursive=bool(args.get("recursive")), timeout=timeout)
                what = str(p)
        except PrefetchError as exc:
            return ModuleResult(failed=True, msg=exc.message)
        data: dict[str, Any] = dict(hashes.to_dict())
        data["source"] = what
        return ModuleResult(msg=hashes.sri, data=data)
