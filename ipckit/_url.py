"""Endpoint URLs and option values: parsing, sizes, validation.

``scheme://address?name=value&...``; option values from a URL are strings and are
converted by the option's declared kind, so ``capacity=8MiB`` and
``capacity=8388608`` mean the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

from ipckit.errors import ConfigurationError

__all__ = [
    "SCHEMES",
    "Scheme",
    "Endpoint",
    "OptionSpec",
    "check_attach_options",
    "parse_bool",
    "parse_size",
    "parse_url",
    "resolve_options",
]


class Scheme(NamedTuple):
    """One URL scheme: what it is, how its channels are made, and the module serving it."""

    about: str
    #: "named": ipckit.open(); "connection": ipckit.listen() and ipckit.connect();
    #: "pair": made by a function of its own (ipckit.pipe()), no URL form.
    kind: str
    module: str


#: Every scheme ipckit knows: the one list (a new backend is one line here).
SCHEMES: Mapping[str, Scheme] = {
    "shm": Scheme("shared-memory ring queue (ipckit.open)", "named", "ipckit.backends.shm"),
    "mq": Scheme("POSIX message queue (ipckit.open)", "named", "ipckit.backends.mq"),
    "fifo": Scheme("named pipe (ipckit.open)", "named", "ipckit.backends.fifo"),
    "unix": Scheme(
        "Unix stream socket (ipckit.listen / ipckit.connect)",
        "connection",
        "ipckit.backends.socket",
    ),
    "tcp": Scheme(
        "TCP socket (ipckit.listen / ipckit.connect)", "connection", "ipckit.backends.socket"
    ),
    "pipe": Scheme("anonymous pipes (ipckit.pipe)", "pair", "ipckit.backends.pipe"),
}

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, what: str = "size") -> int:
    """Bytes from an int or a string like ``"64KiB"``, ``"8MiB"``, ``"1GiB"``, ``"4096"``."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a size, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigurationError(f"{what} must not be negative, got {value}")
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            number, unit = match.groups()
            factor = _UNITS.get(unit.lower())
            if factor is not None:
                size = float(number) * factor
                if size == int(size):
                    return int(size)
    raise ConfigurationError(
        f"{what} must be a number of bytes or a string like '64KiB', '8MiB', '1GiB', not {value!r}"
    )


def parse_bool(value: bool | int | str, what: str = "option") -> bool:
    """A boolean from a bool or a URL string (``1/0``, ``true/false``, ``yes/no``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    raise ConfigurationError(f"{what} must be true or false, not {value!r}")


def _parse_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} must be an integer, not {value!r}") from None


def _parse_float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} must be a number, not {value!r}") from None


def _parse_mode(value: Any, what: str) -> int:
    if isinstance(value, str):
        try:
            mode = int(value, 8)
        except ValueError:
            raise ConfigurationError(f"{what} must be an octal mode like '0600'") from None
    else:
        mode = _parse_int(value, what)
    if not 0 <= mode <= 0o777:
        # setuid, setgid and sticky bits mean nothing on an IPC object and are a hazard
        # on a file someone might execute.
        raise ConfigurationError(
            f"{what} must be permission bits 0..0o777 (like 0o600), not {mode:#o}"
        )
    return mode


def _parse_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, not {value!r}")
    return value


def _parse_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ConfigurationError(f"{what} must be bytes, not {type(value).__name__}")


def _keep(value: Any, what: str) -> Any:
    return value


_CONVERTERS: Mapping[str, Callable[[Any, str], Any]] = {
    "size": parse_size,
    "bool": parse_bool,
    "int": _parse_int,
    "float": _parse_float,
    "mode": _parse_mode,
    "str": _parse_str,
    "bytes": _parse_bytes,
    "object": _keep,
}


@dataclass(frozen=True)
class OptionSpec:
    """One option a backend accepts: its kind, default and a line of help.

    ``creator_only`` marks an option that shapes the channel when it is created
    (its size, depth, mode): an attacher cannot change it, so passing it when
    attaching is an error (:func:`check_attach_options`).
    """

    kind: str
    default: Any
    help: str = ""
    url_ok: bool = True
    creator_only: bool = False

    def convert(self, name: str, value: Any) -> Any:
        """Convert ``value`` (maybe a URL string) to this option's type."""
        if value is None:
            return None
        return _CONVERTERS[self.kind](value, name)


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL: scheme, address and the query-string options."""

    scheme: str
    address: str
    query: Mapping[str, str]
    url: str


def parse_url(url: str) -> Endpoint:
    """Split ``scheme://address?opts`` and check the scheme is known."""
    if not isinstance(url, str):
        raise ConfigurationError(f"endpoint must be a URL string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            f"{url!r} is not an endpoint URL; write scheme://address with a scheme from "
            f"{sorted(SCHEMES)}"
        )
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{k}:// ({v.about})" for k, v in SCHEMES.items())
        raise ConfigurationError(f"unknown scheme {scheme!r} in {url!r}; known schemes: {known}")
    address, _, query_text = rest.partition("?")
    query: dict[str, str] = {}
    if query_text:
        try:
            pairs = parse_qsl(query_text, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ConfigurationError(f"malformed query string in {url!r}") from None
        for key, value in pairs:
            if key in query:
                raise ConfigurationError(f"option {key!r} appears twice in {url!r}")
            query[key] = value
    address = unquote(address)
    if not address:
        raise ConfigurationError(f"{url!r} has no address after {scheme}://")
    return Endpoint(scheme, address, query, f"{scheme}://{rest.partition('?')[0]}")


def resolve_options(
    endpoint_query: Mapping[str, str],
    kwargs: Mapping[str, Any],
    specs: Mapping[str, OptionSpec],
    where: str,
) -> dict[str, Any]:
    """Merge URL and keyword options, convert them, fill defaults, reject unknown ones."""
    for name in list(endpoint_query) + list(kwargs):
        if name not in specs:
            valid = ", ".join(sorted(specs))
            raise ConfigurationError(f"unknown option {name!r} for {where}; valid options: {valid}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in endpoint_query and not spec.url_ok:
            raise ConfigurationError(
                f"option {name!r} cannot be given in the URL for {where}; pass it as a keyword"
            )
        from_url = spec.convert(name, endpoint_query[name]) if name in endpoint_query else None
        from_kw = spec.convert(name, kwargs[name]) if name in kwargs else None
        if from_url is not None and from_kw is not None and from_url != from_kw:
            raise ConfigurationError(
                f"option {name!r} is given twice with different values ({from_url!r} in the "
                f"URL, {from_kw!r} as a keyword); give it once"
            )
        value = from_kw if from_kw is not None else from_url
        out[name] = spec.default if value is None else value
    return out


def check_attach_options(
    specs: Mapping[str, OptionSpec], given_keys: Iterable[str], create: bool, what: str
) -> None:
    """Refuse creator-only options given when attaching (``create=False``).

    ``given_keys`` are the option names the caller actually passed (URL query and
    keywords), not the defaults. Raises :class:`ConfigurationError` naming the
    first such option (in sorted order) and saying it applies only with
    ``create=True``; does nothing when creating.
    """
    if create:
        return
    bad = sorted(k for k in set(given_keys) if k in specs and specs[k].creator_only)
    if bad:
        names = ", ".join(repr(k) for k in bad)
        raise ConfigurationError(
            f"option {names} of {what} applies only when creating the channel "
            "(create=True); an attacher gets the creator's value, so leave it out"
        )
