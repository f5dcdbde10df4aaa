"""Eight processes create one name at once: one wins, seven get FileExistsError, none sees half.

Four more processes attach in a loop while the creators race: each gets
FileNotFoundError until the channel exists, then a whole one (never a protocol error
or a channel that does not work). Every process that got a handle proves it by
sending a message and receiving one.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit.testing import unique_name

CREATORS = 8
ATTACHERS = 4
_CTX: Any = multiprocessing.get_context("fork")
# A Barrier lives in multiprocessing's shared heap, an arena this process keeps open for
# good once made: make it now, so the leak check does not blame the first test here.
_ARENA = _CTX.Barrier(1)


def _url(backend: str, tmp: Path) -> str:
    name = unique_name("race")
    return f"fifo://{tmp}/{name}" if backend == "fifo" else f"{backend}://{name}"


def _prove(ch: ipckit.Channel, tag: str) -> None:
    ch.send(tag, timeout=30)
    ch.recv(timeout=30)  # any process's message: the queue works both ways


def _creator(url: str, barrier: Any, done: Any, results: Any) -> None:
    barrier.wait(30)
    try:
        ch = ipckit.open(url, create=True)
    except FileExistsError:
        with ipckit.open(url) as other:
            _prove(other, "loser")
        results.put("exists")
        return
    except BaseException as exc:
        results.put(f"error {type(exc).__name__}: {exc}")
        return
    with ch:
        _prove(ch, "winner")
        results.put("created")
        done.wait(30)


def _attacher(url: str, barrier: Any, results: Any) -> None:
    barrier.wait(30)
    end = time.monotonic() + 20
    while True:
        try:
            ch = ipckit.open(url)
        except FileNotFoundError:
            if time.monotonic() > end:
                results.put("never appeared")
                return
            time.sleep(0.001)  # leave the CPUs to the creators
            continue
        except BaseException as exc:
            results.put(f"error {type(exc).__name__}: {exc}")
            return
        with ch:
            _prove(ch, "attacher")
        results.put("attached")
        return


@pytest.mark.parametrize("backend", ["shm", "mq", "fifo"])
def test_one_creator_wins(backend: str, tmp_path: Path) -> None:
    url = _url(backend, tmp_path)
    barrier = _CTX.Barrier(CREATORS + ATTACHERS)
    done = _CTX.Event()
    results = _CTX.Queue()
    procs = [
        _CTX.Process(target=_creator, args=(url, barrier, done, results)) for _ in range(CREATORS)
    ]
    procs += [
        _CTX.Process(target=_attacher, args=(url, barrier, results)) for _ in range(ATTACHERS)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
        done.set()
        for p in procs:
            p.join(30)
        assert sorted(got) == sorted(
            ["created"] + ["exists"] * (CREATORS - 1) + ["attached"] * ATTACHERS
        ), got
        assert all(p.exitcode == 0 for p in procs)
    finally:
        done.set()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
        results.close()
        results.join_thread()
        try:
            with ipckit.open(url) as ch:
                ch.unlink()
        except FileNotFoundError:
            pass
