"""Backends by URL scheme, imported only when a channel of that scheme is opened."""

from __future__ import annotations

import importlib
import importlib.util

from ipckit._transport import Backend
from ipckit._url import SCHEMES
from ipckit.errors import ConfigurationError

__all__ = ["available_schemes", "get_backend"]

#: scheme -> module whose ``BACKENDS`` mapping holds the backend for that scheme.
_MODULES = {
    "shm": "ipckit.backends.shm",
    "mq": "ipckit.backends.mq",
    "fifo": "ipckit.backends.fifo",
    "unix": "ipckit.backends.socket",
    "tcp": "ipckit.backends.socket",
    "pipe": "ipckit.backends.pipe",
}
_cache: dict[str, Backend] = {}


def get_backend(scheme: str) -> Backend:
    """The backend serving ``scheme``; a clear error if this build lacks it."""
    found = _cache.get(scheme)
    if found is not None:
        return found
    module_name = _MODULES.get(scheme)
    if module_name is None:
        raise ConfigurationError(f"unknown scheme {scheme!r}; known schemes: {sorted(SCHEMES)}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigurationError(
            f"the {scheme}:// backend is not available in this version of ipckit; "
            f"available: {available_schemes()}"
        ) from None
    backend: Backend | None = module.BACKENDS.get(scheme)
    if backend is None:
        raise ConfigurationError(
            f"{scheme}:// has no URL form; use ipckit.{scheme}() to make a connected pair"
        )
    _cache[scheme] = backend
    return backend


def available_schemes() -> list[str]:
    """Schemes whose backend module is present in this installation."""
    out = []
    for scheme, module_name in _MODULES.items():
        if importlib.util.find_spec(module_name) is not None:
            out.append(scheme)
    return out
