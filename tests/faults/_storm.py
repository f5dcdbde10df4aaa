"""A kill storm: producers and consumers on one channel, a random one SIGKILLed and respawned.

4 producers and 2 consumers (forked processes) move checksummed messages of mixed
sizes, big ones included (out of band on the named queues). Every 50-500 ms the
supervisor SIGKILLs a random worker, waits until it is dead, logs the kill and
starts the next generation of it. At the end, producers stop, consumers drain, and
:func:`ipckit`-independent logs go to the judge (_oracle.py).

Named queues (``shm``, ``mq``, ``fifo``): every worker opens the one channel; the
supervisor's ``shutdown()`` ends the consumers once producers are done.
``unix``: each consumer listens on its own path and serves every connection in one
asyncio loop (``ipckit.aio``); a producer sends to one consumer and moves to the
other when its connection breaks. The supervisor ends each consumer with a
``"STOP"`` connection once the producers have exited.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipckit
from ipckit import aio
from ipckit.testing import unique_name
from tests.faults._oracle import CONSUMED, KILL, SENT, Figures, Kill, judge, read_records

__all__ = ["StormConfig", "run_storm"]

PRODUCERS = 4
CONSUMERS = 2
#: Payload sizes: mostly small, some past a FIFO packet or an mq message (out of band).
SIZES = (16, 64, 200, 1000, 3000, 6000, 20_000, 150_000)
_WEIGHTS = (20, 20, 15, 10, 5, 3, 2, 1)
_CTX: Any = multiprocessing.get_context("fork")


@dataclass(frozen=True)
class StormConfig:
    """One storm: backend, how long the kills go on, the kill interval and a seed."""

    backend: str
    seconds: float
    seed: int
    interval: tuple[float, float] = (0.05, 0.5)
    #: Channel options per backend (the creator's).
    options: dict[str, Any] = field(default_factory=dict)


def _message(rng: random.Random, slot: int, gen: int, seq: int) -> list[Any]:
    body = rng.randbytes(rng.choices(SIZES, _WEIGHTS)[0])
    return [slot, gen, seq, body, zlib.crc32(body)]


def _check(msg: Any) -> tuple[int, int, int, int]:
    """The consumer's record of one message; ok = 0 if it is not a whole, checksummed one."""
    try:
        slot, gen, seq, body, crc = msg
        ok = int(isinstance(body, bytes) and zlib.crc32(body) == crc)
        return int(slot), int(gen), int(seq), ok
    except (TypeError, ValueError):
        return 0, 0, 0, 0


def _log(directory: Path, name: str) -> int:
    return os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


# -- workers (forked; each ends with os._exit) -------------------------------------


def _queue_producer(url: str, slot: int, gen: int, directory: Path, stop: Path) -> None:
    rng = random.Random(slot * 7919 + gen)
    fd = _log(directory, f"p{slot}-{gen}.log")
    with ipckit.open(url) as ch:
        seq = 0
        while not stop.exists():
            msg = _message(rng, slot, gen, seq)
            try:
                ch.send(msg, timeout=0.5)
            except ipckit.Full:
                continue  # not sent: the same sequence number goes again
            except ipckit.ChannelClosed:
                break
            os.write(fd, SENT.pack(seq, time.monotonic_ns(), -1))
            seq += 1


def _queue_consumer(url: str, slot: int, gen: int, directory: Path) -> None:
    fd = _log(directory, f"c{slot}-{gen}.log")
    with ipckit.open(url) as ch:
        while True:
            try:
                batch = ch.recv_many(16, timeout=0.5)
            except ipckit.Empty:
                continue
            except ipckit.ChannelClosed:
                return
            os.write(fd, b"".join(CONSUMED.pack(*_check(m)) for m in batch))


def _socket_url(directory: Path, consumer: int) -> str:
    return f"unix://{directory}/c{consumer}.sock"


def _socket_producer(directory: Path, slot: int, gen: int, stop: Path) -> None:
    rng = random.Random(slot * 7919 + gen)
    fd = _log(directory, f"p{slot}-{gen}.log")
    target = slot % CONSUMERS
    seq = 0
    while not stop.exists():
        try:
            ch = ipckit.connect(_socket_url(directory, target), timeout=1)
        except (ipckit.IPCError, OSError):
            target = (target + 1) % CONSUMERS
            time.sleep(0.01)
            continue
        with ch:
            while not stop.exists():
                msg = _message(rng, slot, gen, seq)
                try:
                    ch.send(msg, timeout=0.5)
                except ipckit.Full:
                    continue
                except (ipckit.ChannelClosed, ipckit.IPCError, OSError):
                    break  # the consumer died: the next one
                os.write(fd, SENT.pack(seq, time.monotonic_ns(), target))
                seq += 1
        target = (target + 1) % CONSUMERS


def _socket_consumer(directory: Path, slot: int, gen: int) -> None:
    fd = _log(directory, f"c{slot}-{gen}.log")

    async def serve(conn: aio.AsyncChannel, done: asyncio.Event, active: list[int]) -> None:
        active[0] += 1
        try:
            async with conn:
                while True:
                    try:
                        batch = await conn.recv_many(16)
                    except (ipckit.ChannelClosed, ipckit.ProtocolError):
                        return
                    if batch == ["STOP"]:
                        done.set()
                        return
                    os.write(fd, b"".join(CONSUMED.pack(*_check(m)) for m in batch))
        finally:
            active[0] -= 1

    async def main() -> None:
        done = asyncio.Event()
        active = [0]
        tasks = set()
        async with aio.listen(_socket_url(directory, slot)) as lst:
            while not done.is_set():
                accepting = asyncio.ensure_future(lst.accept())
                stopping = asyncio.ensure_future(done.wait())
                finished, _ = await asyncio.wait(
                    {accepting, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if accepting in finished:
                    task = asyncio.create_task(serve(accepting.result(), done, active))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    accepting.cancel()
                stopping.cancel()
            while active[0]:
                await asyncio.sleep(0.01)

    asyncio.run(main())


def _run(target: Callable[..., None], *args: Any) -> None:
    # A worker is judged by its logs, and an exception is a failure the supervisor sees
    # in the exit code: 0 for a clean end, 3 for anything raised.
    code = 0
    try:
        target(*args)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 3
    os._exit(code)


# -- the supervisor ----------------------------------------------------------------


@dataclass
class _Worker:
    consumer: bool
    slot: int
    gen: int
    proc: Any


def run_storm(cfg: StormConfig, directory: Path) -> Figures:
    """Run one storm in ``directory`` (logs, sockets, FIFOs) and judge it."""
    rng = random.Random(cfg.seed)
    stop = directory / "stop"
    queue = cfg.backend != "unix"
    owner: ipckit.Channel | None = None
    url = ""
    if queue:
        name = unique_name("storm")
        url = f"fifo://{directory}/{name}" if cfg.backend == "fifo" else f"{cfg.backend}://{name}"
        owner = ipckit.open(url, create=True, **cfg.options)
    failures: list[str] = []
    kills: list[Kill] = []

    def start(consumer: bool, slot: int, gen: int) -> _Worker:
        if queue:
            body: Callable[..., None] = _queue_consumer if consumer else _queue_producer
            args: tuple[Any, ...] = (
                (url, slot, gen, directory) if consumer else (url, slot, gen, directory, stop)
            )
        else:
            body = _socket_consumer if consumer else _socket_producer
            args = (directory, slot, gen) if consumer else (directory, slot, gen, stop)
        proc = _CTX.Process(target=_run, args=(body, *args), daemon=True)
        proc.start()
        return _Worker(consumer, slot, gen, proc)

    workers = [start(True, c, 0) for c in range(CONSUMERS)]
    workers += [start(False, p, 0) for p in range(PRODUCERS)]
    try:
        end = time.monotonic() + cfg.seconds
        while time.monotonic() < end:
            time.sleep(rng.uniform(*cfg.interval))
            for w in workers:
                if w.proc.exitcode is not None:
                    role = "consumer" if w.consumer else "producer"
                    failures.append(f"{role} {w.slot}.{w.gen} exited with {w.proc.exitcode}")
            if failures:
                break
            i = rng.randrange(len(workers))
            victim = workers[i]
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.join(30)
            kills.append(Kill(victim.consumer, victim.slot, victim.gen, time.monotonic_ns()))
            workers[i] = start(victim.consumer, victim.slot, victim.gen + 1)
        stop.touch()
        for w in workers:
            if not w.consumer:
                w.proc.join(30)
                if w.proc.exitcode != 0:
                    failures.append(f"producer {w.slot}.{w.gen} ended with {w.proc.exitcode}")
        if owner is not None:
            owner.shutdown()
        else:
            for c in range(CONSUMERS):
                _stop_consumer(_socket_url(directory, c))
        for w in workers:
            if w.consumer:
                w.proc.join(30)
                if w.proc.exitcode != 0:
                    failures.append(f"consumer {w.slot}.{w.gen} ended with {w.proc.exitcode}")
    finally:
        for w in workers:
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(10)
        if owner is not None:
            owner.unlink()  # first: the last handle's close then sweeps blocks nobody took
            owner.close()
    kill_log = b"".join(KILL.pack(int(k.consumer), k.slot, k.generation, k.dead_ns) for k in kills)
    (directory / "kills.log").write_bytes(kill_log)
    fig = _judge_logs(directory, kills, queue)
    fig.worker_failures = len(failures)
    fig.examples[:0] = failures
    return fig


def _stop_consumer(url: str) -> None:
    # A consumer respawned by the last kill may not be listening yet (or its dead
    # predecessor's socket file is still there): try again until it is.
    end = time.monotonic() + 30
    while True:
        try:
            with ipckit.connect(url, timeout=10) as ch:
                ch.send("STOP")
                return
        except (ipckit.ConnectionRefused, FileNotFoundError):
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def _judge_logs(directory: Path, kills: list[Kill], queue: bool) -> Figures:
    sent: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    consumed = []
    for path in sorted(directory.glob("*.log")):
        stem = path.stem
        if stem == "kills":
            continue
        slot, gen = (int(x) for x in stem[1:].split("-"))
        data = path.read_bytes()
        if stem[0] == "p":
            sent[(slot, gen)] = [tuple(r) for r in read_records(data, SENT)]  # type: ignore[misc]
        else:
            consumed.append([tuple(r) for r in read_records(data, CONSUMED)])
    return judge(sent, consumed, kills, queue=queue)  # type: ignore[arg-type]
