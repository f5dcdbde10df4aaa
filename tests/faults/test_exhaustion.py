"""Out of descriptors (RLIMIT_NOFILE) and out of message-queue bytes (RLIMIT_MSGQUEUE).

Each limit is lowered in a forked child, which opens channels until one fails. The
failure must be an ipckit error that names the limit, and it must leave nothing
half-made: every object in /dev/shm and /dev/mqueue belongs to a channel that opened
whole. (A full /dev/shm is tested in tests/queues/test_edges.py, on a private tmpfs.)
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit.testing import unique_name

_CTX: Any = multiprocessing.get_context("fork")


def _ours(tag: str) -> set[str]:
    found = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if tag in n}
    if os.path.isdir("/dev/mqueue"):
        found |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue") if tag in n}
    return found


def _until_refused(backend: str, tag: str, tmp: str, results: Any) -> None:
    """In the child: lower RLIMIT_NOFILE, open channels until refused, report and clean up."""
    opened: list[ipckit.Channel] = []
    urls: list[str] = []
    try:
        free = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (free + 24, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )
        for i in range(1000):
            if backend == "pipe":
                opened.extend(ipckit.pipe())
                continue
            url = f"fifo://{tmp}/{tag}-{i}" if backend == "fifo" else f"{backend}://{tag}-{i}"
            opened.append(ipckit.open(url, create=True))
            urls.append(url)
        results.put("never refused")
    except ipckit.IPCError as exc:
        whole = {p for ch in opened for p in _objects(ch)}
        left = _ours(tag) - whole
        results.put(("refused", type(exc).__name__, str(exc), sorted(left)))
    except BaseException as exc:
        results.put(("other", type(exc).__name__, str(exc), []))
    finally:
        for ch in opened:
            ch.unlink()
            ch.close()


def _objects(ch: ipckit.Channel) -> set[str]:
    return {p for info in ipckit.list_channels() if info.url == ch.url for p in info.objects}


@pytest.mark.parametrize("backend", ["shm", "mq", "fifo", "pipe"])
def test_out_of_descriptors_names_the_limit_and_leaves_nothing(
    backend: str, tmp_path: Path
) -> None:
    tag = unique_name("nofile")
    results = _CTX.Queue()
    proc = _CTX.Process(target=_until_refused, args=(backend, tag, str(tmp_path), results))
    proc.start()
    try:
        verdict = results.get(timeout=60)
        proc.join(60)
    finally:
        if proc.is_alive():
            proc.kill()
        results.close()
        results.join_thread()
    assert verdict[0] == "refused", verdict
    _, kind, message, left = verdict
    assert "RLIMIT_NOFILE" in message, message
    assert left == [], f"{kind}: half-made objects left: {left}"
    assert _ours(tag) == set()


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
    results = _CTX.Queue()
    proc = _CTX.Process(target=_mq_until_refused, args=(tag, results))
    proc.start()
    try:
        state, kind, message = results.get(timeout=60)
        made = results.get(timeout=60)
        proc.join(60)
    finally:
        if proc.is_alive():
            proc.kill()
        results.close()
        results.join_thread()
    assert state == "refused", (state, kind, message)
    assert kind == "QueueLimitError" and "RLIMIT_MSGQUEUE" in message, message
    assert 0 < made < 100
    assert _ours(tag) == set()
