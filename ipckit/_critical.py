"""Taking a lock and recording who took it, in one step no interrupt can split.

CPython runs a Python-level signal handler (Ctrl-C's ``KeyboardInterrupt``, an
alarm handler that raises) right after a call returns, at the entry of a Python
function and at a loop's back edge; never between plain loads, stores,
subscripts and comparisons. So in

    lock.acquire()
    try: ...
    finally: lock.release()

an interrupt can land after ``acquire`` returned and before ``try``: the lock
stays taken for good, and the next call of the same thread (or ``close()``)
waits forever. The same holds for a handler landing between a call that takes
a shared lock and the store that records its owner.

The remedy used throughout ipckit:

- taking the lock and recording the owner run as *one* C-level call
  (:func:`run_steps`: prebuilt ``functools.partial`` steps driven by C
  iterators), inside which no bytecode, and so no handler, runs;
- that call stands inside the ``try`` whose ``finally`` gives the lock back, and
  the ``finally`` tests the owner record with plain loads before anything else,
  then clears it with a store directly followed by the releasing call.

Either the owner record says "taken by this call" and the ``finally`` releases,
or it does not and nothing was taken. :class:`Mutex` is the per-handle lock of
:class:`~ipckit.Channel`; the shared-memory lock (:mod:`ipckit._sync`) and the
stream transports follow the same pattern.
"""

from __future__ import annotations

import operator
import threading
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from itertools import takewhile
from typing import Any

__all__ = ["Mutex", "run_all", "run_steps"]

_drain: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
_call = operator.call
_truth = operator.truth
_get_ident = threading.get_ident


def run_steps(steps: Iterable[Callable[[], Any]]) -> None:
    """Call each step in order, stopping after the first that returns a false value.

    The steps run inside one C-level call: no signal handler can run between
    them. A step that raises stops the rest and the exception propagates.
    """
    _drain(takewhile(_truth, map(_call, steps)))


def run_all(steps: Iterable[Callable[[], Any]]) -> None:
    """Call each step in order, in one C-level call; a step that raises stops the rest."""
    _drain(map(_call, steps))


class Mutex:
    """A lock for one handle's senders (or receivers) that interrupts cannot leak.

    ``owner`` is the thread id of the holder (0 when free), written in the same
    C-level step that takes the lock. The pattern at every use::

        me = get_ident()
        if mutex.owner == me: ...          # a handler or finaliser calling back in
        try:
            if not mutex.take(me, timeout): raise ...
            ...
        finally:
            if mutex.owner == me:          # plain loads: no handler runs here
                mutex.owner = 0            # a store directly followed by the call
                mutex.release()

    ``release`` may be called from another thread (a lent
    :class:`~ipckit.MessageView` is given back wherever it is released), as with
    any ``threading.Lock``.
    """

    __slots__ = ("_lock", "_steps", "owner", "release")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start over with a free lock.

        For a forked child, whose copy may be held by a thread that does not exist there.
        """
        lock = threading.Lock()
        self._lock = lock
        self.owner = 0
        self.release: Callable[[], None] = lock.release
        # (thread id, blocking) -> steps; built once per thread.
        self._steps: dict[tuple[int, bool], tuple[Callable[[], Any], ...]] = {}

    def take(self, me: int, timeout: float | None) -> bool:
        """Take the lock as thread ``me`` within ``timeout`` (None: forever, 0: no wait).

        True when taken; ``owner`` is then ``me``, recorded in the same step.
        """
        if timeout is None or timeout <= 0:
            key = (me, timeout is None)
            steps = self._steps.get(key)
            if steps is None:
                if len(self._steps) > 64:
                    self._steps.clear()  # thread ids of threads long gone
                lock = self._lock
                acquire = lock.acquire if timeout is None else partial(lock.acquire, False)
                steps = self._steps[key] = (acquire, partial(setattr, self, "owner", me))
        else:
            steps = (
                partial(self._lock.acquire, True, timeout),
                partial(setattr, self, "owner", me),
            )
        run_steps(steps)
        return self.owner == me
