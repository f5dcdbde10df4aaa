"""One list of schemes; each names its kind, and the wrong call says which call to use."""

from __future__ import annotations

import importlib

import pytest

import ipckit
from ipckit._url import SCHEMES


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_is_served_by_its_module_as_its_kind_says(scheme: str) -> None:
    entry = SCHEMES[scheme]
    module = importlib.import_module(entry.module)
    backends = getattr(module, "BACKENDS", {})
    if entry.kind == "pair":
        assert scheme not in backends
        assert callable(getattr(ipckit, scheme))
        return
    backend = backends[scheme]
    assert backend.scheme == scheme
    if entry.kind == "named":
        assert callable(backend.open)
        assert not hasattr(backend, "listen") and not hasattr(backend, "connect")
    else:
        assert entry.kind == "connection"
        assert callable(backend.listen) and callable(backend.connect)
        assert not hasattr(backend, "open")


@pytest.mark.parametrize(
    ("call", "url", "says"),
    [
        (ipckit.open, "unix://@x", "ipckit.listen() and ipckit.connect(), not open()"),
        (ipckit.open, "tcp://127.0.0.1:1", "ipckit.listen() and ipckit.connect(), not open()"),
        (ipckit.open, "pipe://x", "ipckit.pipe()"),
        (ipckit.listen, "shm://x", "ipckit.open(), not listen()"),
        (ipckit.listen, "mq://x", "ipckit.open(), not listen()"),
        (ipckit.connect, "fifo:///tmp/x", "ipckit.open(), not connect()"),
        (ipckit.connect, "pipe://x", "ipckit.pipe()"),
    ],
)
def test_the_wrong_call_for_a_scheme_names_the_right_one(call: object, url: str, says: str) -> None:
    with pytest.raises(
        ipckit.ConfigurationError, match=says.replace("(", r"\(").replace(")", r"\)")
    ):
        call(url)  # type: ignore[operator]


def test_an_unknown_scheme_lists_every_known_one() -> None:
    with pytest.raises(ipckit.ConfigurationError) as info:
        ipckit.open("nope://x")
    for scheme in SCHEMES:
        assert f"{scheme}://" in str(info.value)
