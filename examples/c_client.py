"""A client written in C talks to an ipckit server over a Unix socket.

Run: python examples/c_client.py

The C program (examples/c_client.c) was written from docs/protocol.md alone: it
does the unix:// handshake with an authkey (HMAC-SHA256 both ways), then sends
msgpack requests in frames and checks the replies. This script compiles it with
the system's C compiler, listens, serves it, and checks that every request was
answered. Without a C compiler it says so and exits 0.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ipckit

HERE = Path(__file__).resolve().parent
COUNT = 1000


def compile_client(cc: str, out: Path) -> None:
    """Build examples/c_client.c into ``out`` (warnings are errors: it must be clean C)."""
    subprocess.run(
        [
            cc,
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
            str(out),
            str(HERE / "c_client.c"),
        ],
        check=True,
        timeout=60,
    )


def main() -> int:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("skipped: no C compiler (cc) on PATH; install one to run this example")
        return 0
    authkey = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as tmp:
        client = Path(tmp) / "c_client"
        compile_client(cc, client)
        name = f"ipckit-c-client-{os.getpid()}"
        with ipckit.listen(f"unix://@{name}", authkey=authkey) as listener:
            proc = subprocess.Popen([str(client), f"@{name}", authkey.hex(), str(COUNT)])
            try:
                answered = 0
                with listener.accept(timeout=10) as conn:
                    for request in conn:  # ends at the client's end-of-stream frame
                        if request.get("op") != "add":
                            print(f"unexpected request {request!r}", file=sys.stderr)
                            return 1
                        a, b = request["args"]
                        conn.send(a + b, timeout=10)
                        answered += 1
                status = proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    print(f"server: answered {answered} requests from the C client; it exited with {status}")
    return 0 if status == 0 and answered == COUNT else 1


if __name__ == "__main__":
    sys.exit(main())
