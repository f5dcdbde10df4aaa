"""Out of descriptors (RLIMIT_NOFILE) and out of message-queue bytes (RLIMIT_MSGQUEUE).

Each limit is lowered in a forked child, which opens channels until one fails. The
failure must be an ipckit error that names the limit, and it must leave nothing
half-made: every object in /dev/shm and /dev/mqueue belongs to a channel that opened
whole. (A full /dev/shm is tested in tests/queues/test_edges.py, on a private tmpfs.)
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import re
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit.testing import unique_name

_CTX: Any = multiprocessing.get_context("fork")


def _in_child(target: Callable[..., None], args: tuple[Any, ...], count: int) -> list[Any]:
    """Run ``target(*args, results)`` in a forked child; its first ``count`` results."""
    results = _CTX.Queue()
    proc = _CTX.Process(target=target, args=(*args, results))
    proc.start()
    try:
        got = [results.get(timeout=60) for _ in range(count)]
        proc.join(60)
        return got
    finally:
        if proc.is_alive():
            proc.kill()
        results.close()
        results.join_thread()


def _ours(tag: str, tmp: str | None = None) -> set[str]:
    found = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if tag in n}
    if tmp is not None:
        found |= {f"{tmp}/{n}" for n in os.listdir(tmp) if tag in n}
    if os.path.isdir("/dev/mqueue"):
        found |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue") if tag in n}
    return found


class _Starved:
    """Exactly ``headroom`` more descriptors, for the body of a ``with``.

    RLIMIT_NOFILE caps descriptor numbers, not how many are open, so the holes
    below the highest one are filled first (with /dev/null) and the limit set just
    above it: counting open descriptors alone gives a headroom that depends on the
    layout this process inherited.
    """

    def __init__(self, headroom: int) -> None:
        top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        self._fillers: list[int] = []
        while (fd := os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)) <= top:
            self._fillers.append(fd)
        os.close(fd)
        self._soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + headroom, hard))

    def end(self) -> None:
        """Give the limit back (the test's own bookkeeping needs descriptors); idempotent."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (self._soft, hard))
        while self._fillers:
            os.close(self._fillers.pop())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fd_targets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def _until_refused(backend: str, tag: str, tmp: str, results: Any) -> None:
    """In the child, for each headroom: open channels until refused, report, clean up.

    Headrooms 0 to 13 put the refusal at every descriptor a create takes (a channel
    takes at most six), with zero, one and two channels already open.
    """
    # A backend's module loads on its first use, which takes a descriptor of its own.
    importlib.import_module(f"ipckit.backends.{backend}")
    for headroom in range(14):
        results.put(_refused_once(backend, f"{tag}h{headroom}", tmp, headroom))


def _refused_once(backend: str, tag: str, tmp: str, headroom: int) -> tuple[Any, ...]:
    opened: list[ipckit.Channel] = []
    urls: list[str] = []
    before = _open_fds()
    verdict: tuple[Any, ...]
    try:
        starved = _Starved(headroom)
        try:
            for i in range(1000):
                if backend == "pipe":
                    opened.extend(ipckit.pipe())
                    continue
                url = f"fifo://{tmp}/{tag}-{i}" if backend == "fifo" else f"{backend}://{tag}-{i}"
                opened.append(ipckit.open(url, create=True))
                urls.append(url)
            verdict = ("never refused",)
        except ipckit.IPCError as exc:
            starved.end()
            # Checked while the caller still holds the exception, as a caller does.
            left = _of_refused(_ours(tag, tmp), tag, len(urls))
            held = _of_refused(_fd_targets(), tag, len(urls))
            verdict = ("refused", type(exc).__name__, str(exc), sorted(left), sorted(held))
        finally:
            starved.end()
    except BaseException as exc:
        verdict = ("other", type(exc).__name__, str(exc), [], [])
    finally:
        for ch in opened:
            ch.unlink()
            ch.close()
    return (headroom, *verdict, _open_fds() - before, sorted(_ours(tag, tmp)))


def _of_refused(paths: set[str], tag: str, whole: int) -> set[str]:
    """The paths that belong to no channel that opened whole (numbered 0 to whole - 1)."""
    found = set()
    for path in paths:
        number = re.search(rf"{re.escape(tag)}-(\d+)", path)
        if number is not None and int(number.group(1)) >= whole:
            found.add(path)
    return found


@pytest.mark.parametrize("backend", ["shm", "mq", "fifo", "pipe"])
def test_out_of_descriptors_names_the_limit_and_leaves_nothing(
    backend: str, tmp_path: Path
) -> None:
    tag = unique_name("nofile")
    verdicts = _in_child(_until_refused, (backend, tag, str(tmp_path)), 14)
    for verdict in verdicts:
        headroom, state, *rest = verdict
        assert state == "refused", verdict
        kind, message, left, held, extra, remaining = rest
        context = f"{headroom} spare descriptors, {kind}"
        assert "RLIMIT_NOFILE" in message, (context, message)
        assert left == [], f"{context}: half-made objects left: {left}"
        assert held == [], f"{context}: the refused channel still holds descriptors: {held}"
        assert extra == 0, f"{context}: {extra} descriptors open after every channel closed"
        assert remaining == [], f"{context}: left after unlink: {remaining}"


def _attach_starved(url: str, results: Any) -> None:
    """In the child: attach to ``url`` with 0, 1, 2... spare descriptors until it works."""
    outcomes: list[str] = []
    importlib.import_module(f"ipckit.backends.{url.split(':', maxsplit=1)[0]}")
    before = _open_fds()
    try:
        for headroom in range(32):
            starved = _Starved(headroom)
            try:
                ch = ipckit.open(url)
            except ipckit.IPCError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                starved.end()
            outcomes.append("attached")
            ch.close()
            break
    except BaseException as exc:
        outcomes.append(f"other {type(exc).__name__}: {exc}")
    results.put((outcomes, _open_fds() - before))


@pytest.mark.parametrize("backend", ["shm", "mq", "fifo"])
def test_attaching_out_of_descriptors_leaves_the_channel_to_the_others(
    backend: str, tmp_path: Path
) -> None:
    """Refused at every step of an attach, the channel and its messages stay whole.

    (multiprocessing's SharedMemory unlinks the segment when mmap fails on attach.)
    """
    name = unique_name("starved")
    url = f"fifo://{tmp_path}/{name}" if backend == "fifo" else f"{backend}://{name}"
    with ipckit.open(url, create=True) as owner:
        try:
            owner.send("kept")
            ((outcomes, extra),) = _in_child(_attach_starved, (url,), 1)
            assert outcomes[-1] == "attached", outcomes
            refusals = outcomes[:-1]
            assert len(refusals) >= 3, outcomes  # the segment, its mapping, the semaphores...
            assert all("RLIMIT_NOFILE" in r for r in refusals), refusals
            assert extra == 0, f"the refused attaches left {extra} descriptors open"
            with ipckit.open(url) as other:
                assert other.recv(timeout=5) == "kept"
        finally:
            owner.unlink()


def _mq_until_refused(tag: str, results: Any) -> None:
    made: list[ipckit.Channel] = []
    try:
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (200_000, 200_000))
        for i in range(100):
            made.append(
                ipckit.open(f"mq://{tag}-{i}", create=True, max_messages=10, message_size="8KiB")
            )
        results.put(("never refused", "", ""))
    except ipckit.IPCError as exc:
        results.put(("refused", type(exc).__name__, str(exc)))
    except BaseException as exc:
        results.put(("other", type(exc).__name__, str(exc)))
    finally:
        results.put(len(made))
        for ch in made:
            ch.unlink()
            ch.close()


def test_the_mq_byte_limit_is_named() -> None:
    if not os.path.isdir("/dev/mqueue"):
        pytest.skip("no mqueue filesystem mounted")
    tag = unique_name("mqlim")
    (state, kind, message), made = _in_child(_mq_until_refused, (tag,), 2)
    assert state == "refused", (state, kind, message)
    assert kind == "QueueLimitError" and "RLIMIT_MSGQUEUE" in message, message
    assert 0 < made < 100
    assert _ours(tag) == set()
