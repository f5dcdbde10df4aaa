"""Endpoint URLs, sizes and option merging."""

from __future__ import annotations

import pytest

import ipckit
from ipckit import ConfigurationError
from ipckit._url import OptionSpec, parse_size, parse_url, resolve_options


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("64KiB", 65536),
        ("8MiB", 8 << 20),
        ("1GiB", 1 << 30),
        ("1.5KiB", 1536),
        ("2kb", 2000),
        ("10 MiB", 10 << 20),
    ],
)
def test_sizes(text: int | str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "KiB", "-1", "1.3B", "12XB", True, -5, 1.5])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


def test_parse_url() -> None:
    ep = parse_url("shm://jobs?capacity=8MiB&spin=10")
    assert (ep.scheme, ep.address, dict(ep.query)) == (
        "shm",
        "jobs",
        {"capacity": "8MiB", "spin": "10"},
    )
    assert ep.url == "shm://jobs"
    assert parse_url("unix:///run/app.sock").address == "/run/app.sock"
    assert parse_url("unix://@abstract").address == "@abstract"
    assert parse_url("TCP://127.0.0.1:0").scheme == "tcp"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nope://x", "known schemes"),
        ("shm:/x", "scheme://address"),
        ("shm://", "no address"),
        ("shm://x?a=1&a=2", "twice"),
        ("shm://x?&&", "malformed"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        parse_url(url)


def test_unknown_scheme_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        ipckit.open("smh://typo")
    for scheme in ("shm://", "mq://", "fifo://", "unix://", "tcp://"):
        assert scheme in str(info.value)


SPECS = {"capacity": OptionSpec("size", 1024), "spin": OptionSpec("int", 0)}


def test_options_merge_and_convert() -> None:
    got = resolve_options({"capacity": "2KiB"}, {"spin": 5}, SPECS, "test")
    assert got == {"capacity": 2048, "spin": 5}
    assert resolve_options({}, {}, SPECS, "test") == {"capacity": 1024, "spin": 0}
    assert resolve_options({"capacity": "2KiB"}, {"capacity": 2048}, SPECS, "t")["capacity"] == 2048


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match="capacity, spin"):
        resolve_options({}, {"capacty": 1}, SPECS, "test")


def test_conflicting_option() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        resolve_options({"spin": "1"}, {"spin": 2}, SPECS, "test")


def test_open_rejects_unknown_option_with_list() -> None:
    with pytest.raises(ConfigurationError, match="max_message_size"):
        ipckit.listen("unix:///tmp/x.sock", bogus=1)
