"""The listener behind ``unix://`` and ``tcp://``: accept, then a handshake per client.

A background thread accepts connections from the moment the listener exists and
starts one short-lived thread per client to run its handshake (uid check, TLS,
``_handshake``) under ``handshake_timeout``; finished handshakes queue up (at most
``backlog`` of them) and ``accept()`` hands them out in completion order. So a
client may connect before the server calls ``accept()``, and a client that connects
and says nothing costs its own thread until its deadline, never ``accept()`` for the
others. A failed client is dropped, logged on the ``ipckit`` logger and counted in
:attr:`SocketListener.rejected`. ``close()`` closes the queued connections too.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import ssl
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

from ipckit._deadline import Deadline
from ipckit._oserror import os_error_to_ipc
from ipckit._transport import Transport
from ipckit.backends._handshake import deny, server_handshake
from ipckit.backends._sockstream import make_transport
from ipckit.errors import AuthenticationError, ConfigurationError, HandleClosed, Timeout

__all__ = [
    "MAX_PENDING_HANDSHAKES",
    "SocketListener",
    "check_authkey",
    "configure_tcp",
    "peer_uid",
]

log = logging.getLogger("ipckit")

#: Handshakes run at once per listener; more clients wait in the kernel's backlog.
MAX_PENDING_HANDSHAKES = 64
_UCRED = struct.Struct("3i")


def check_authkey(options: Mapping[str, Any]) -> bytes | None:
    """The authkey option, refusing an empty one."""
    key: bytes | None = options.get("authkey")
    if key is not None and not key:
        raise ConfigurationError(
            "authkey must not be empty: an empty key proves nothing; pass a secret of 16+ "
            "random bytes (secrets.token_bytes(32)) to both ends, or no authkey"
        )
    return key


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return int(_UCRED.unpack(raw)[1])


def configure_tcp(sock: socket.socket) -> None:
    """Per-connection TCP options."""
    # Small messages must not wait for Nagle's algorithm to coalesce them.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SocketListener:
    """A listening socket that completes handshakes in the background.

    An acceptor thread accepts clients while the server is anywhere (not only inside
    :meth:`accept`), so ``connect()`` returns as soon as the handshake is done, as
    ``multiprocessing``'s ``Client()`` does. A process that forks while none of its
    threads is inside :meth:`accept` pauses its acceptor until it calls it again, so
    a child that accepts on an inherited listener gets its clients; the child's
    first ``accept()`` starts its own. Finished connections queue up to
    ``backlog``; past that the acceptor stops accepting and clients wait in the
    kernel's backlog. :meth:`fileno` is an eventfd readable while a finished
    connection is queued (level-triggered).
    """

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        options: Mapping[str, Any],
        *,
        unix: bool,
        path: str | None = None,
    ) -> None:
        self.url = url
        self._sock = sock
        self._unix = unix
        self._path = path
        self._inode = os.stat(path).st_ino if path else None
        self._options = dict(options)
        self._authkey = check_authkey(options)
        self._ssl: ssl.SSLContext | None = options.get("ssl_context")
        self._no_pickle = not unix and self._authkey is None
        self._backlog = max(1, int(options.get("backlog", 64)))
        #: Clients dropped during the handshake (garbage, wrong key, silence, other user).
        self.rejected = 0
        self._closed = False
        self._failure: Exception | None = None
        self._creator = os.getpid()
        sock.setblocking(False)
        self._start()
        _LIVE.add(self)

    def _start(self) -> None:
        """Per-process state and the acceptor thread (again in a forked child)."""
        self._pid = os.getpid()
        # Set in a process that forks (see _pause_before_fork) until it accepts again.
        self._paused = False
        self._accepting = 0  # threads of this process inside accept()
        self._done: deque[Transport] = deque()
        self._pending: dict[threading.Thread, socket.socket] = {}
        self._lock = threading.Lock()
        # _ready: readable while _done is not empty. _wake: tells the acceptor to look again.
        self._ready = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"ipckit-accept {self.url}", daemon=True
        )
        self._acceptor.start()

    def _restart_in_child(self) -> None:
        """A forked child: the parent's threads are gone and its queue is the parent's."""
        for transport in self._done:
            transport.close()  # this process's copies only
        for fd in (self._ready, self._wake):
            os.close(fd)
        self._start()

    def fileno(self) -> int:
        """A descriptor that polls readable while a finished connection waits for accept()."""
        return self._ready

    # -- the acceptor thread ----------------------------------------------------------

    def _accept_loop(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # signals: main thread
        poller = select.poll()
        poller.register(self._wake, select.POLLIN)
        listening = False
        while True:
            with self._lock:
                if self._closed:
                    return
                busy = len(self._pending)
                room = (
                    not self._paused
                    and busy < MAX_PENDING_HANDSHAKES
                    and busy + len(self._done) < self._backlog
                )
            if room != listening:
                if room:
                    poller.register(self._sock.fileno(), select.POLLIN)
                else:
                    poller.unregister(self._sock.fileno())
                listening = room
            for fd, _ in poller.poll():
                if fd == self._wake:
                    _drain(self._wake)
                else:
                    self._accept_one()

    def _accept_one(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("ipckit listener %s cannot accept: %s", self.url, exc)
                time.sleep(0.1)  # out of descriptors: retry later instead of spinning
                return
            # Nobody to raise to in this thread: accept() raises it, and acceptance stops.
            self._failure = os_error_to_ipc(exc, f"accepting on {self.url}")
            with self._lock:
                self._closed = True
                os.eventfd_write(self._ready, 1)
            return
        thread = threading.Thread(
            target=self._serve_handshake, args=(conn,), name="ipckit-handshake", daemon=True
        )
        with self._lock:
            self._pending[thread] = conn
        thread.start()

    def _serve_handshake(self, conn: socket.socket) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        deadline = Deadline(self._options["handshake_timeout"])
        sock = conn
        transport: Transport | None = None
        try:
            if self._unix:
                if not self._options["allow_other_users"] and peer_uid(conn) != os.getuid():
                    deny(conn, deadline)
                    raise AuthenticationError(
                        f"refused a client on {self.url} running as uid {peer_uid(conn)}"
                    )
            else:
                configure_tcp(conn)
            if self._ssl is not None:
                conn.settimeout(deadline.remaining())
                sock = self._ssl.wrap_socket(conn, server_side=True)
            server_handshake(sock, self._authkey, deadline)
            transport = make_transport(
                sock, self.url, self._options["max_message_size"], no_pickle=self._no_pickle
            )
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, only this client is dropped
            level = logging.WARNING if isinstance(exc, AuthenticationError) else logging.INFO
            log.log(level, "ipckit listener %s dropped a client: %s", self.url, exc)
            sock.close()
            conn.close()
        finally:
            with self._lock:
                self._pending.pop(threading.current_thread(), None)
                if transport is None:
                    self.rejected += 1
                elif not self._closed:
                    self._done.append(transport)
                    transport = None
                    if len(self._done) == 1:
                        os.eventfd_write(self._ready, 1)
                if not self._closed:
                    # Under the lock: close() may not release the descriptor meanwhile.
                    os.eventfd_write(self._wake, 1)  # a handshake slot is free
        if transport is not None:
            transport.close()  # the listener closed while this client was shaking hands

    # -- the caller's side ------------------------------------------------------------

    def accept(self, deadline: Deadline) -> Transport:
        """The next connection whose handshake succeeded; ``Timeout`` when time runs out."""
        if self._pid != os.getpid() and not self._closed:
            self._restart_in_child()
        elif self._paused:
            self._paused = False
            os.eventfd_write(self._wake, 1)
        with self._lock:
            self._accepting += 1
        try:
            return self._next(deadline)
        finally:
            with self._lock:
                self._accepting -= 1

    def _next(self, deadline: Deadline) -> Transport:
        poller = select.poll()
        poller.register(self._ready, select.POLLIN)
        while True:
            with self._lock:
                if self._closed:
                    if self._failure is not None:
                        raise self._failure
                    raise HandleClosed(f"listener on {self.url} is closed")
                done = self._done
                if done:
                    if len(done) == 1:
                        _drain(self._ready)
                    os.eventfd_write(self._wake, 1)  # room in the queue: accept again
                    transport = done[0]
                    del done[0]
                    return transport
            left = deadline.remaining()
            ready = poller.poll(None if left is None else int(left * 1000) + 1)
            if not ready and deadline.expired():
                raise Timeout(
                    f"no client completed a handshake on {self.url} within "
                    f"timeout={deadline.timeout}"
                )

    def close(self) -> None:
        """Stop listening, drop clients mid-handshake and queued, remove the socket file."""
        if self._pid != os.getpid():
            # A forked child that never accepted: the lock and threads are the parent's.
            if not self._closed:
                self._closed = True
                for transport in self._done:
                    transport.close()  # this process's copies only
                self._sock.close()
                os.close(self._ready)
                os.close(self._wake)
            return
        with self._lock:
            if self._sock.fileno() < 0:
                return
            self._closed = True
            pending = dict(self._pending)
            done = list(self._done)
            self._done.clear()
            os.eventfd_write(self._wake, 1)  # the acceptor sees closed and returns
            os.eventfd_write(self._ready, 1)  # so does an accept() in another thread
        self._acceptor.join(10)
        for conn in pending.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the handshake thread at once
            except OSError:
                pass
        for thread in pending:
            thread.join(10)
        for transport in done:
            transport.close()
        if self._path is not None and self._creator == os.getpid():
            try:
                if os.stat(self._path).st_ino == self._inode:
                    os.unlink(self._path)
            except FileNotFoundError:
                pass
        with self._lock:
            self._sock.close()
            os.close(self._ready)
            os.close(self._wake)


_LIVE: weakref.WeakSet[SocketListener] = weakref.WeakSet()


def _pause_before_fork() -> None:
    # A process that forks may have made the listener for a child to accept on (a
    # forked server): its acceptor must not take the child's clients. It accepts in
    # the background again once it calls accept() itself; the child starts its own.
    for listener in list(_LIVE):
        if not listener._closed and listener._pid == os.getpid() and not listener._accepting:
            listener._paused = True
            try:
                os.eventfd_write(listener._wake, 1)
            except OSError:
                pass


os.register_at_fork(before=_pause_before_fork)


def _drain(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass
