"""Run one round of one contender on one workload, in real processes, always bounded.

The parent makes the link, forks the consumer and the producer(s), waits until
each has opened its end and reported ready, then says go. The children are forked
(``multiprocessing`` start method ``fork``) rather than spawned: the link's queues,
descriptors and listeners and the payload variants are inherited as they are,
nothing is pickled, and a child starts in milliseconds. Start-up is outside the
timed region either way.

Every wait has a deadline. A child that raises, dies or overruns is reported as
ERROR or TIMEOUT, the others are killed, and the link is cleaned up in a
``finally``: no round can hang the run or leave a named object behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from ipckit._bench import child
from ipckit._bench.contender import (
    CONSUMER,
    PRODUCER,
    Contender,
    Endpoint,
    Link,
    LinkSpec,
    Role,
    Unit,
)
from ipckit._bench.placement import Placement, pin
from ipckit._bench.results import ERROR, FAIL, OK, TIMEOUT, RoundResult
from ipckit._bench.workloads import PINGPONG, Workload, make_variants

__all__ = ["START_METHOD", "link_spec", "run_round"]

#: Documented in the report: see the module docstring for why.
START_METHOD = "fork"
_CTX = multiprocessing.get_context("fork")
#: Seconds a child may take to open its end (connect, accept, attach).
_SETUP_TIMEOUT = 30.0
#: Seconds a child may take to exit after reporting, before it is killed.
_EXIT_GRACE = 5.0


@dataclass(frozen=True)
class _Job:
    role: Role
    index: int
    name: str
    cpu: int | None
    link: Link
    workload: Workload
    producers: int
    duration_ns: int


def link_spec(workload: Workload, producers: int = 1) -> LinkSpec:
    """What a link must provide for ``workload``."""
    return LinkSpec(
        duplex=workload.kind == PINGPONG, max_size=workload.max_size, producers=producers
    )


def _play(job: _Job, ep: Endpoint) -> dict[str, Any]:
    wl = job.workload
    if wl.kind == PINGPONG:
        if job.role == PRODUCER:
            return child.ping(ep, make_variants(wl.sizes, 0), job.duration_ns, wl.min_messages)
        return child.echo(ep)
    if job.role == PRODUCER:
        variants = make_variants(wl.sizes, job.index)
        return child.produce(ep, variants, job.duration_ns, wl.min_messages)
    all_variants = [make_variants(wl.sizes, p) for p in range(job.producers)]
    return child.consume(ep, all_variants, job.producers)


def _child_main(job: _Job, conn: Connection) -> None:
    ep: Endpoint | None = None
    try:
        pin(job.cpu)
        ep = job.link.endpoint(job.role, job.index)
        conn.send(("ready", None))
        if conn.recv() != "go":
            return
        conn.send(("done", _play(job, ep)))
        # Keep this end open until every process is done. Seen with pyzmq PUSH/PULL
        # and several producers: a producer that closed right after its last send
        # lost its last messages, and the consumer waited for them forever.
        conn.recv()
    except BaseException as exc:  # noqa: BLE001 - report everything, even KeyboardInterrupt
        with contextlib.suppress(Exception):
            conn.send(("error", f"{job.name}: {type(exc).__name__}: {exc}"))
    finally:
        if ep is not None:
            with contextlib.suppress(Exception):
                ep.close()
        conn.close()


@contextlib.contextmanager
def _alarm(seconds: float, what: str) -> Iterator[None]:
    """Bound a blocking call in the parent (main thread only; elsewhere unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"{what} took longer than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    # Someone else's timer (pytest-timeout uses SIGALRM too) is put back afterwards.
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer > 0:
            left = max(outer - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


class _Abort(Exception):
    def __init__(self, result: RoundResult) -> None:
        super().__init__(result.reason)
        self.result = result


def _collect(
    conns: dict[str, Connection], procs: dict[str, BaseProcess], expect: str, deadline: float
) -> dict[str, Any]:
    """Wait for message ``expect`` from every child; raise _Abort on error, death or timeout."""
    got: dict[str, Any] = {}
    while len(got) < len(conns):
        pending = [n for n in conns if n not in got]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            who = ", ".join(pending)
            raise _Abort(RoundResult(TIMEOUT, reason=f"no {expect!r} from {who} in time; killed"))
        waitables: list[Any] = [conns[n] for n in pending] + [procs[n].sentinel for n in pending]
        wait(waitables, timeout=remaining)
        for name in pending:
            conn = conns[name]
            if conn.poll():
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    kind, payload = "error", None
                if kind == "error":
                    code = procs[name].exitcode
                    why = payload or f"{name} exited (code {code}) without a word"
                    raise _Abort(RoundResult(ERROR, reason=why))
                got[name] = payload
            elif not procs[name].is_alive():
                code = procs[name].exitcode
                raise _Abort(RoundResult(ERROR, reason=f"{name} died (exit code {code})"))
    return got


def _stop(procs: dict[str, BaseProcess], grace: float) -> None:
    end = time.monotonic() + grace
    for proc in procs.values():
        proc.join(max(0.0, end - time.monotonic()))
    for proc in procs.values():
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        with contextlib.suppress(ValueError):
            proc.close()


def _verify(workload: Workload, results: dict[str, Any]) -> RoundResult:
    cons = results[CONSUMER]
    prods = [v for k, v in results.items() if k != CONSUMER]
    if workload.kind == PINGPONG:
        (p,) = prods
        if p["failure"]:
            return RoundResult(FAIL, reason=p["failure"])
        if cons["received"] != p["sent"]:
            return RoundResult(FAIL, reason=f"pinged {p['sent']} times, echoed {cons['received']}")
        return RoundResult(OK, {"p50_us": p["p50_us"], "p99_us": p["p99_us"]})
    if cons["failure"]:
        return RoundResult(FAIL, reason=cons["failure"])
    sent = sum(p["sent"] for p in prods)
    sent_bytes = sum(p["bytes"] for p in prods)
    if cons["received"] != sent:
        return RoundResult(FAIL, reason=f"sent {sent} messages, received {cons['received']}")
    if cons["bytes"] != sent_bytes:
        return RoundResult(FAIL, reason=f"sent {sent_bytes} bytes, received {cons['bytes']}")
    elapsed = max(1, cons["t_end"] - min(p["t0"] for p in prods))
    return RoundResult(
        OK,
        {
            "msgs_per_s": sent * 1e9 / elapsed,
            "mb_per_s": sent_bytes * 1e3 / elapsed,
            "gb_per_s": sent_bytes / elapsed,
            "messages": float(sent),
        },
    )


def run_round(
    contender: Contender,
    workload: Workload,
    *,
    placement: Placement,
    duration: float,
    timeout: float,
    producers: int = 1,
) -> RoundResult:
    """Run one timed round and check it; never raises for a contender's fault."""
    start = time.monotonic()
    result = _run_round(contender, workload, placement, duration, timeout, producers)
    return dataclasses.replace(result, seconds=time.monotonic() - start)


def _run_round(  # noqa: PLR0917 - private, called once
    contender: Contender,
    workload: Workload,
    placement: Placement,
    duration: float,
    timeout: float,
    producers: int,
) -> RoundResult:
    for p in range(producers):  # make the payloads once, before forking
        make_variants(workload.sizes, p)
    try:
        with _alarm(_SETUP_TIMEOUT, f"setting up {contender.name}"):
            link = contender.make_link(link_spec(workload, producers))
    except Exception as exc:  # noqa: BLE001 - any setup failure is the contender's
        return RoundResult(ERROR, reason=f"setup: {type(exc).__name__}: {exc}")
    unit = _unit_of(link)
    result = _drive(link, contender, workload, placement, duration, timeout, producers)
    return dataclasses.replace(result, unit=unit)


def _unit_of(link: Link) -> Unit | None:
    """The link's native unit; a contender that fails to say has none (it is only a note)."""
    try:
        return link.unit()
    except Exception:  # noqa: BLE001 - a note must not fail the round
        return None


def _drive(  # noqa: PLR0917 - private, called once
    link: Link,
    contender: Contender,
    workload: Workload,
    placement: Placement,
    duration: float,
    timeout: float,
    producers: int,
) -> RoundResult:
    """Fork the children on ``link``, run the round, check it, and clean the link up."""
    roles: list[tuple[Role, int, str]] = [(CONSUMER, 0, CONSUMER)]
    roles += [
        (PRODUCER, i, PRODUCER if producers == 1 else f"producer-{i}") for i in range(producers)
    ]
    conns: dict[str, Connection] = {}
    procs: dict[str, BaseProcess] = {}
    grace = 0.0  # kill at once unless every child reported
    try:
        for role, index, name in roles:
            job = _Job(
                role,
                index,
                name,
                placement.cpu_for(role, index),
                link,
                workload,
                producers,
                int(duration * 1e9),
            )
            parent_end, child_end = _CTX.Pipe(duplex=True)
            conns[name] = parent_end
            proc = _CTX.Process(
                target=_child_main, args=(job, child_end), name=f"ipckit-bench-{name}"
            )
            proc.daemon = True  # never outlive the bench, whatever happens to it
            procs[name] = proc
            proc.start()
            child_end.close()
        try:
            _collect(conns, procs, "ready", time.monotonic() + min(timeout, _SETUP_TIMEOUT))
            for name, conn in conns.items():
                try:
                    conn.send("go")
                except OSError:
                    return RoundResult(ERROR, reason=f"{name} went away before the start")
            results = _collect(conns, procs, "done", time.monotonic() + timeout)
            for conn in conns.values():
                with contextlib.suppress(OSError):
                    conn.send("exit")
        except _Abort as abort:
            return abort.result
        grace = _EXIT_GRACE
        return _verify(workload, results)
    finally:
        _stop(procs, grace)
        for conn in conns.values():
            conn.close()
        try:
            with _alarm(_SETUP_TIMEOUT, f"cleaning up {contender.name}"):
                link.cleanup()
        except Exception:  # noqa: S110, BLE001 - a failed clean-up must not end the run
            pass
