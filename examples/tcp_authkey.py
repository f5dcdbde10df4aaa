"""TCP on the loopback interface with a shared secret: a child process connects.

Run: python examples/tcp_authkey.py

``tcp://127.0.0.1:0`` binds any free port and ``listener.url`` says which. With
``authkey=`` both sides prove they know the key (a mutual HMAC challenge) before
any message moves; a client with a wrong key gets ``AuthenticationError`` and the
listener drops it (logging a warning on the ``ipckit`` logger) and goes on
serving. Here the key travels to the child as a process argument; between
unrelated programs, read it from a file only your user can read.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import secrets
import sys

import ipckit


def client(url: str, authkey: bytes) -> None:
    """Try a wrong key first, then report some work with the right one."""
    try:
        ipckit.connect(url, authkey=b"not the key", timeout=10)
    except ipckit.AuthenticationError as exc:
        print("child, wrong key:", exc)
    with ipckit.connect(url, authkey=authkey, timeout=10) as conn:
        for i in range(3):
            conn.send({"step": i, "done": i == 2})
        print("child, server says:", conn.recv(timeout=10))


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    authkey = secrets.token_bytes(32)
    ctx = mp.get_context("spawn")
    with ipckit.listen("tcp://127.0.0.1:0", authkey=authkey) as listener:
        print("listening on", listener.url)
        child = ctx.Process(target=client, args=(listener.url, authkey))
        child.start()
        try:
            with listener.accept(timeout=30) as conn:
                while True:
                    report = conn.recv(timeout=10)
                    print("parent got:", report)
                    if report["done"]:
                        break
                conn.send("thanks")
        finally:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
                child.join()
    return 0 if child.exitcode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
