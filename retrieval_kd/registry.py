"""One lazy registry by name, for losses, dataset readers, bundle kinds, artefact loaders and CLI commands.

Entries are objects registered by a decorator (`@REG.add("name")`) in modules the registry imports only when a
name is first asked for, or "module:attribute" strings imported on first use: `rkd --help`, config validation and
the server's start-up then import only what they use.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from retrieval_kd.errors import RKDError


def import_target(target: str) -> Any:
    """The object named by "package.module:attr.sub" (or the module itself without ':')."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class LazyRegistry:
    """name -> object; unknown names first import the registering `modules`, then fail with the known names."""

    def __init__(self, what: str, modules: Iterable[str] = (), targets: dict[str, str] | None = None,
                 error: type[Exception] = RKDError):
        self.what, self.modules, self.error = what, tuple(modules), error
        self._targets: dict[str, str] = dict(targets or {})
        self._objects: dict[str, Any] = {}
        self._imported = False

    def add(self, name: str, **attrs: Any) -> Callable[[Any], Any]:
        """Decorator registering its object under `name` (and setting `attrs` on it, e.g. a kind)."""

        def deco(obj: Any) -> Any:
            for key, value in attrs.items():
                setattr(obj, key, value)
            self._objects[name] = obj
            return obj

        return deco

    def lazy(self, name: str, target: str) -> None:
        """Register "module:attr", imported when `name` is first asked for."""
        self._targets[name] = target

    def _import_modules(self) -> None:
        if not self._imported:
            self._imported = True
            for mod in self.modules:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        """Every registered name (importing the registering modules)."""
        self._import_modules()
        return sorted(set(self._objects) | set(self._targets))

    def __contains__(self, name: str) -> bool:
        return name in self._objects or name in self._targets or name in self.names()

    def get(self, name: str) -> Any:
        """The object under `name`; the registry's error naming the known names when there is none."""
        if name not in self._objects and name not in self._targets:
            self._import_modules()
        if name not in self._objects and name in self._targets:
            self._objects[name] = import_target(self._targets[name])
        if name not in self._objects:
            raise self.error(f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._objects[name]
