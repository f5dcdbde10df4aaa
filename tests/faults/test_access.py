"""Every named object a channel makes is mode 0600 whatever the umask, and another user is refused.

Objects are found by what appears in /dev/shm, /dev/mqueue and the test's directory
while a channel is made and used (a big message included, so its out-of-band block
shows too). The second-user checks need root (to switch a forked child to "nobody").
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit.testing import unique_name

NOBODY = 65534
_CTX: Any = multiprocessing.get_context("fork")


def _entries(tmp: Path) -> set[str]:
    found = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm")}
    if os.path.isdir("/dev/mqueue"):
        found |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue")}
    return found | {str(p) for p in tmp.iterdir()}


def _url(backend: str, tmp: Path) -> str:
    name = unique_name("acc")
    if backend == "fifo":
        return f"fifo://{tmp}/{name}"
    if backend == "unix":
        return f"unix://{tmp}/{name}.sock"
    return f"{backend}://{name}"


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
@pytest.mark.parametrize("backend", ["shm", "mq", "fifo"])
def test_named_objects_are_0600_whatever_the_umask(
    backend: str, umask: int, tmp_path: Path
) -> None:
    before = _entries(tmp_path)
    old = os.umask(umask)
    try:
        ch = (
            ipckit.open(_url(backend, tmp_path), create=True, capacity="64KiB")
            if backend == "shm"
            else ipckit.open(_url(backend, tmp_path), create=True)
        )
        try:
            peer = ipckit.open(ch.url)
            ch.send_bytes(os.urandom(1 << 20))  # out of band on every named queue
            made = _entries(tmp_path) - before
            modes = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in made}
            assert made, "no object found"
            assert all(m == 0o600 for m in modes.values()), {p: oct(m) for p, m in modes.items()}
            assert any(".oob." in p for p in made), made  # the block was checked too
            peer.recv_bytes(timeout=10)
            peer.close()
        finally:
            ch.unlink()
            ch.close()
    finally:
        os.umask(old)


def test_a_unix_socket_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with ipckit.listen(_url("unix", tmp_path)) as lst:
            path = lst.url.removeprefix("unix://")
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        os.umask(old)


def _as_nobody(url: str, results: Any) -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    try:
        if url.startswith("unix://"):
            ipckit.connect(url, timeout=5).close()
        else:
            ipckit.open(url).close()
    except ipckit.PermissionDenied as exc:
        results.put(f"refused: {exc}")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
    else:
        results.put("allowed")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a second uid needs root")
@pytest.mark.parametrize("backend", ["shm", "mq", "fifo", "unix"])
def test_another_user_is_refused(backend: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # the directory lets nobody in: only the object's own mode refuses
    url = _url(backend, tmp_path)
    results = _CTX.Queue()
    try:
        if backend == "unix":
            owner: Any = ipckit.listen(url)
        else:
            owner = ipckit.open(url, create=True)
        try:
            proc = _CTX.Process(target=_as_nobody, args=(url, results))
            proc.start()
            verdict = results.get(timeout=30)
            proc.join(30)
            assert verdict.startswith("refused"), verdict
        finally:
            if backend != "unix":
                owner.unlink()
            owner.close()
    finally:
        results.close()
        results.join_thread()
