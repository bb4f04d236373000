"""Finding modules: every :class:`Module` subclass in a ``hlplay.modules.*`` file.

Adding a module is adding a file. A file that fails to import does not break
the others; the failure is reported when a playbook uses a module from it.
The common case (``command`` in ``command.py``) imports just that file; the
whole package is scanned only when a name is not found that way.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import hlplay.modules as _package
from hlplay.errors import PlaybookError, did_you_mean
from hlplay.modules.base import Module

# Prefixes Ansible users write before a module name (``ansible.builtin.command``).
_PREFIXES = ("ansible.builtin.", "ansible.legacy.", "hlplay.builtin.", "hlplay.")
_SKIP = frozenset(("base", "registry", "__init__"))

_modules: dict[str, type[Module]] = {}
_broken: dict[str, str] = {}  # file stem -> error
_imported: set[str] = set()
_scanned = False


def canonical_name(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _register_from(mod: ModuleType) -> None:
    for _, obj in inspect.getmembers(mod, inspect.isclass):
        if (
            issubclass(obj, Module)
            and obj is not Module
            and not inspect.isabstract(obj)
            and obj.__module__ == mod.__name__
            and isinstance(getattr(obj, "name", None), str)
        ):
            _modules.setdefault(obj.name, obj)


def _import_file(stem: str) -> None:
    if stem in _imported or stem in _SKIP:
        return
    _imported.add(stem)
    try:
        mod = importlib.import_module(f"{_package.__name__}.{stem}")
    except Exception as exc:  # a broken module file must not break the others
        _broken[stem] = f"{type(exc).__name__}: {exc}"
        return
    _register_from(mod)


def _file_exists(stem: str) -> bool:
    return any(info.name == stem for info in pkgutil.iter_modules(_package.__path__))


def _scan() -> None:
    global _scanned
    if _scanned:
        return
    for info in pkgutil.iter_modules(_package.__path__):
        _import_file(info.name)
    _scanned = True


def all_modules() -> dict[str, type[Module]]:
    """Every module that imported, by name."""
    _scan()
    return dict(sorted(_modules.items()))


def broken_modules() -> dict[str, str]:
    """Module files that failed to import, with the error."""
    _scan()
    return dict(_broken)


def find_module(name: str) -> type[Module] | None:
    """The module called ``name`` (Ansible prefixes allowed), or None."""
    name = canonical_name(name)
    found = _modules.get(name)
    if found is not None:
        return found
    if name.isidentifier():
        for stem in (name, name + "_"):
            if stem not in _imported and stem not in _SKIP and _file_exists(stem):
                _import_file(stem)
        found = _modules.get(name)
        if found is not None:
            return found
    _scan()
    return _modules.get(name)


def get_module(name: str) -> type[Module]:
    """The module called ``name``; PlaybookError (with did-you-mean) when there is none."""
    found = find_module(name)
    if found is not None:
        return found
    canonical = canonical_name(name)
    for stem in (canonical, canonical + "_"):
        if stem in _broken:
            raise PlaybookError(f"module '{canonical}' failed to load: {_broken[stem]}")
    raise PlaybookError(f"unknown module '{name}'{did_you_mean(canonical, _modules)}")


def register(module: type[Module]) -> type[Module]:
    """Add a module defined outside ``hlplay.modules`` (plugins, tests); usable as a decorator."""
    if not isinstance(getattr(module, "name", None), str):
        raise TypeError("a module class needs a 'name'")
    _modules[module.name] = module
    return module


def unregister(name: str) -> None:
    _modules.pop(name, None)
