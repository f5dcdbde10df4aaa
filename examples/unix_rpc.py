"""Request/response over a Unix socket: a server process and a client.

Run: python examples/unix_rpc.py

The server listens on ``unix://PATH`` (the socket file is mode 0600 and only
processes of the same user may connect), answers ``{"method", "params"}``
requests until the client hangs up, and removes the socket file when its
listener closes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import ipckit

METHODS: dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b,
    "upper": str.upper,
    "stats": lambda xs: {"n": len(xs), "mean": sum(xs) / len(xs)},
}


def serve(url: str, ready: Event) -> None:
    """Accept one client and answer its requests until it closes the connection."""
    with ipckit.listen(url) as listener:
        ready.set()
        with listener.accept(timeout=30) as conn:
            for request in conn:  # ends when the client closes its end
                method = METHODS.get(request["method"])
                if method is None:
                    conn.send({"error": f"no method {request['method']!r}"})
                    continue
                conn.send({"result": method(*request["params"])})


def call(conn: ipckit.Channel, method: str, *params: Any) -> Any:
    """Send one request and wait for its answer."""
    conn.send({"method": method, "params": params})
    reply = conn.recv(timeout=10)
    if "error" in reply:
        raise LookupError(reply["error"])
    return reply["result"]


def main() -> int:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"unix://{tmp}/rpc-{os.getpid()}.sock"
        ready = ctx.Event()
        server = ctx.Process(target=serve, args=(url, ready))
        server.start()
        try:
            if not ready.wait(timeout=30):
                print("the server did not start", file=sys.stderr)
                return 1
            with ipckit.connect(url, timeout=10) as conn:
                print("add:", call(conn, "add", 2, 40))
                print("upper:", call(conn, "upper", "hello"))
                print("stats:", call(conn, "stats", [1.0, 2.0, 6.0]))
                try:
                    call(conn, "divide", 1, 0)
                except LookupError as exc:
                    print("error:", exc)
        finally:
            server.join(timeout=30)
            if server.is_alive():
                server.kill()
                server.join()
    return 0 if server.exitcode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
