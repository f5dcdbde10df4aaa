"""Backends by URL scheme, imported only when a channel of that scheme is opened.

The schemes, their kind (named or connection) and their modules are listed once,
in :data:`ipckit._url.SCHEMES`; each backend module maps its schemes to its
backend objects in ``BACKENDS``. A new backend is one module and one line there.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import cast

from ipckit._transport import ConnectionBackend, NamedBackend
from ipckit._url import SCHEMES
from ipckit.errors import ConfigurationError

__all__ = ["available_schemes", "connection_backend", "load_backend", "named_backend"]

_cache: dict[str, NamedBackend | ConnectionBackend] = {}


def load_backend(scheme: str) -> NamedBackend | ConnectionBackend:
    """The backend serving ``scheme``, of either kind; a clear error if this build lacks it."""
    found = _cache.get(scheme)
    if found is not None:
        return found
    entry = SCHEMES.get(scheme)
    if entry is None:
        raise ConfigurationError(f"unknown scheme {scheme!r}; known schemes: {sorted(SCHEMES)}")
    if entry.kind == "pair":
        raise ConfigurationError(
            f"{scheme}:// has no URL form; use ipckit.{scheme}() to make a connected pair"
        )
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name != entry.module:
            raise
        raise ConfigurationError(
            f"the {scheme}:// backend is not available in this version of ipckit; "
            f"available: {available_schemes()}"
        ) from None
    backend: NamedBackend | ConnectionBackend = module.BACKENDS[scheme]
    _cache[scheme] = backend
    return backend


def named_backend(scheme: str) -> NamedBackend:
    """The backend of a named scheme, for ``ipckit.open()``."""
    kind = SCHEMES[scheme].kind if scheme in SCHEMES else None
    if kind == "connection":
        raise ConfigurationError(
            f"{scheme}:// is a connection: use ipckit.listen() and ipckit.connect(), not open()"
        )
    return cast(NamedBackend, load_backend(scheme))


def connection_backend(scheme: str, verb: str) -> ConnectionBackend:
    """The backend of a connection scheme, for ``ipckit.listen()``/``connect()`` (``verb``)."""
    kind = SCHEMES[scheme].kind if scheme in SCHEMES else None
    if kind == "named":
        raise ConfigurationError(f"{scheme}:// is a named channel: use ipckit.open(), not {verb}()")
    return cast(ConnectionBackend, load_backend(scheme))


def available_schemes() -> list[str]:
    """Schemes whose backend module is present in this installation."""
    return [s for s, e in SCHEMES.items() if importlib.util.find_spec(e.module) is not None]
