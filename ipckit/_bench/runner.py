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

Three shapes of round: one or more producers and one consumer (the stream ends
with each producer's END); several consumers on a workload with fixed counts,
plus a closer that ends the stream once the producers are done (see
:mod:`ipckit._bench.many`); and a solo contender (``raw-memcpy``), whose producer
runs alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from ipckit._bench import child, many
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
from ipckit._bench.workloads import (
    DICT,
    PINGPONG,
    Workload,
    make_dicts,
    make_numbered,
    make_variants,
)

__all__ = ["START_METHOD", "link_spec", "run_round"]

#: Documented in the report: see the module docstring for why.
START_METHOD = "fork"
_CTX = multiprocessing.get_context("fork")
#: Seconds a child may take to open its end (connect, accept, attach).
_SETUP_TIMEOUT = 30.0
#: Seconds a child may take to exit after reporting, before it is killed.
_EXIT_GRACE = 5.0
#: Seconds between asking the closer for more end markers while consumers still run.
_TOP_UP = 0.25
CLOSER = "closer"


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
    consumers: int = 1


def link_spec(workload: Workload, producers: int = 1) -> LinkSpec:
    """What a link must provide for ``workload`` (``producers``: unless the workload says)."""
    return LinkSpec(
        duplex=workload.kind == PINGPONG,
        max_size=workload.max_size,
        producers=workload.producer_count(producers),
        consumers=workload.consumers,
        objects=workload.payload == DICT,
    )


def _play(job: _Job, ep: Endpoint, conn: Connection) -> dict[str, Any]:
    wl = job.workload
    if job.name == CLOSER:
        return many.close_stream(ep, conn)
    if wl.messages is not None:
        if job.role == PRODUCER:
            return many.produce_numbered(ep, make_numbered(wl.sizes, job.index, wl.messages))
        streams = [make_numbered(wl.sizes, p, wl.messages) for p in range(job.producers)]
        return many.consume_numbered(ep, streams, job.consumers)
    if wl.payload == DICT:
        if job.role == PRODUCER:
            dicts = make_dicts(job.index)
            return child.produce_objects(ep, dicts, job.duration_ns, wl.min_messages)
        return child.consume_objects(ep, make_dicts(0))
    if getattr(ep, "aio", False):
        return _play_aio(job, ep)
    if wl.kind == PINGPONG:
        if job.role == PRODUCER:
            return child.ping(ep, make_variants(wl.sizes, 0), job.duration_ns, wl.min_messages)
        return child.echo(ep)
    if job.role == PRODUCER:
        variants = make_variants(wl.sizes, job.index)
        return child.produce(ep, variants, job.duration_ns, wl.min_messages)
    all_variants = [make_variants(wl.sizes, p) for p in range(job.producers)]
    return child.consume(ep, all_variants, job.producers)


def _play_aio(job: _Job, ep: Any) -> dict[str, Any]:
    """The -aio rows: the same rounds, awaited in an asyncio loop (ipckit._bench.aio_child)."""
    from ipckit._bench import aio_child

    wl = job.workload
    if wl.kind == PINGPONG:
        if job.role == PRODUCER:
            variants = make_variants(wl.sizes, 0)
            return aio_child.ping(ep._out, ep._in, variants, job.duration_ns, wl.min_messages)
        return aio_child.echo(ep._out, ep._in)
    if job.role == PRODUCER:
        variants = make_variants(wl.sizes, job.index)
        return aio_child.produce(ep._out, variants, job.duration_ns, wl.min_messages)
    return aio_child.consume(ep._in, make_variants(wl.sizes, 0))


def _child_main(job: _Job, conn: Connection) -> None:
    ep: Endpoint | None = None
    try:
        pin(job.cpu)
        ep = job.link.endpoint(job.role, job.index)
        conn.send(("ready", None))
        if conn.recv() != "go":
            return
        report = _play(job, ep, conn)
        report["implementation"] = ep.implementation
        report["self_check"] = ep.verify()
        conn.send(("done", report))
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
    conns: dict[str, Connection],
    procs: dict[str, BaseProcess],
    expect: str,
    deadline: float,
    *,
    tick: Callable[[int], None] | None = None,
    watched: dict[str, Connection] | None = None,
) -> dict[str, Any]:
    """Wait for message ``expect`` from every child; raise _Abort on error, death or timeout.

    ``conns`` names the children waited for; the death of any other child in
    ``procs`` (whose pipe is in ``watched``) ends the wait too. ``tick``, if given, is
    called every few tenths of a second while nothing arrives.
    """
    watched = watched or {}
    got: dict[str, Any] = {}
    while len(got) < len(conns):
        pending = [n for n in conns if n not in got]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            who = ", ".join(pending)
            raise _Abort(RoundResult(TIMEOUT, reason=f"no {expect!r} from {who} in time; killed"))
        for name, proc in procs.items():
            if name in watched and not proc.is_alive():
                raise _Abort(RoundResult(ERROR, reason=_death(name, proc, watched[name])))
        waitables: list[Any] = [conns[n] for n in pending]
        waitables += [procs[n].sentinel for n in [*pending, *watched]]
        step = remaining if tick is None else min(remaining, _TOP_UP)
        if not wait(waitables, timeout=step) and tick is not None:
            tick(len(pending))
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


def _death(name: str, proc: BaseProcess, conn: Connection) -> str:
    """Why a child that was not being waited for is gone: its own error report if it left one."""
    try:
        if conn.poll():
            kind, payload = conn.recv()
            if kind == "error" and payload:
                return str(payload)
    except (EOFError, OSError):
        pass
    return f"{name} died (exit code {proc.exitcode})"


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


def _rates(sent: int, sent_bytes: int, elapsed_ns: int) -> dict[str, float]:
    elapsed = max(1, elapsed_ns)
    return {
        "msgs_per_s": sent * 1e9 / elapsed,
        "mb_per_s": sent_bytes * 1e3 / elapsed,
        "gb_per_s": sent_bytes / elapsed,
        "messages": float(sent),
    }


def _implementation(reports: list[dict[str, Any]]) -> str | None:
    """``native`` or ``pure`` when every ipckit end agrees, ``mixed`` if not, else None."""
    found = {r.get("implementation") for r in reports} - {None}
    if not found:
        return None
    return str(found.pop()) if len(found) == 1 else "mixed"


def _verify(
    workload: Workload, prods: list[dict[str, Any]], cons: list[dict[str, Any]]
) -> RoundResult:
    """Check the children's reports against each other; the figures only if they agree."""
    for who, report in [*(("producer", p) for p in prods), *(("consumer", c) for c in cons)]:
        if report.get("self_check"):
            return RoundResult(FAIL, reason=f"{who}: {report['self_check']}")
    if not cons:  # a solo floor: the producer timed and checked its own work
        (p,) = prods
        return RoundResult(OK, _rates(p["sent"], p["bytes"], p["t1"] - p["t0"]))
    if workload.messages is not None:
        why, metrics = many.verify_numbered(prods, cons, workload.messages)
        return RoundResult(FAIL, reason=why) if why else RoundResult(OK, metrics)
    (c,) = cons
    if workload.kind == PINGPONG:
        (p,) = prods
        if p["failure"]:
            return RoundResult(FAIL, reason=p["failure"])
        if c["received"] != p["sent"]:
            return RoundResult(FAIL, reason=f"pinged {p['sent']} times, echoed {c['received']}")
        return RoundResult(OK, {"p50_us": p["p50_us"], "p99_us": p["p99_us"]})
    if c["failure"]:
        return RoundResult(FAIL, reason=c["failure"])
    sent = sum(p["sent"] for p in prods)
    sent_bytes = sum(p["bytes"] for p in prods)
    if c["received"] != sent:
        return RoundResult(FAIL, reason=f"sent {sent} messages, received {c['received']}")
    if c["bytes"] != sent_bytes:
        return RoundResult(FAIL, reason=f"sent {sent_bytes} bytes, received {c['bytes']}")
    return RoundResult(OK, _rates(sent, sent_bytes, c["t_end"] - min(p["t0"] for p in prods)))


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
    producers = workload.producer_count(producers)
    for p in range(producers):  # make the payloads once, before forking
        if workload.messages is not None:
            make_numbered(workload.sizes, p, workload.messages)
        elif workload.payload == DICT:
            make_dicts(p)
        else:
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


def _roles(contender: Contender, workload: Workload, producers: int) -> list[tuple[Role, int, str]]:
    """(role, index, name) of every child of a round: consumers, producers, the closer."""
    consumers = 0 if contender.solo else workload.consumers
    roles: list[tuple[Role, int, str]] = [
        (CONSUMER, k, CONSUMER if consumers == 1 else f"consumer-{k}") for k in range(consumers)
    ]
    roles += [
        (PRODUCER, i, PRODUCER if producers == 1 else f"producer-{i}") for i in range(producers)
    ]
    if workload.messages is not None and consumers:
        roles.append((PRODUCER, producers, CLOSER))
    return roles


def _finish(
    conns: dict[str, Connection],
    procs: dict[str, BaseProcess],
    roles: list[tuple[Role, int, str]],
    deadline: float,
    batch: int,
) -> dict[str, Any]:
    """Collect every child's "done"; with a closer, end the stream once the producers are done.

    A consumer stops at the first end marker but may take up to ``batch`` at once, so
    ``batch`` markers per consumer leave one for each: a consumer still running means
    fewer than consumers x batch were taken. More are sent if one still waits anyway.
    """
    if CLOSER not in conns:
        return _collect(conns, procs, "done", deadline)
    prods = {n: conns[n] for r, _, n in roles if r == PRODUCER and n != CLOSER}
    cons = {n: conns[n] for r, _, n in roles if r == CONSUMER}
    closer = {CLOSER: conns[CLOSER]}
    results = _collect(prods, procs, "done", deadline, watched={**cons, **closer})

    def ask(count: int) -> None:
        try:
            conns[CLOSER].send(("pills", count))
        except OSError:
            raise _Abort(RoundResult(ERROR, reason="the closer went away")) from None

    ask(len(cons) * max(1, batch))
    results |= _collect(cons, procs, "done", deadline, tick=ask, watched=closer)
    try:
        conns[CLOSER].send("stop")
    except OSError:
        raise _Abort(RoundResult(ERROR, reason="the closer went away")) from None
    results |= _collect(closer, procs, "done", deadline)
    return results


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
    roles = _roles(contender, workload, producers)
    consumers = sum(1 for r, _, _ in roles if r == CONSUMER)
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
                consumers,
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
            results = _finish(conns, procs, roles, time.monotonic() + timeout, contender.batch)
            for conn in conns.values():
                with contextlib.suppress(OSError):
                    conn.send("exit")
        except _Abort as abort:
            return abort.result
        grace = _EXIT_GRACE
        prods = [results[n] for r, _, n in roles if r == PRODUCER and n != CLOSER]
        cons = [results[n] for r, _, n in roles if r == CONSUMER]
        result = _verify(workload, prods, cons)
        return dataclasses.replace(result, implementation=_implementation(list(results.values())))
    finally:
        _stop(procs, grace)
        for conn in conns.values():
            conn.close()
        try:
            with _alarm(_SETUP_TIMEOUT, f"cleaning up {contender.name}"):
                link.cleanup()
        except Exception:  # noqa: S110, BLE001 - a failed clean-up must not end the run
            pass
