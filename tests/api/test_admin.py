"""ipckit ls / rm / gc on real shared-memory objects."""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import pytest

import ipckit
from ipckit.backends import _ring as ring
from ipckit.cli import main
from ipckit.testing import unique_name


def test_ls_rm(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"shm://{unique_name('adm')}"
    with ipckit.open(url, create=True, capacity="64KiB") as ch:
        ch.send("x")
        assert main(["ls"]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if url in ln)
        assert "depth=1" in line
        assert "capacity=65536" in line
        assert main(["rm", url]) == 0
        assert f"removed {url}" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        ipckit.open(url)


def test_gc_removes_half_made_queue_and_orphan_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    name = unique_name("adm")
    seg = shared_memory.SharedMemory(f"ikshm.{name}", create=True, size=8192)
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    seg.buf[:8] = ring.MAGIC
    seg.buf[8:12] = (1).to_bytes(4, "little")
    seg.close()
    orphan_owner = unique_name("gone")
    with open(f"/dev/shm/ikshm.{orphan_owner}~.oob.0123456789abcdef", "wb") as f:
        f.write(b"left behind")
    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove shm://{name}" in out
    assert main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed shm://{name}" in out
    assert f"ikshm.{orphan_owner}~.oob." in out
    with pytest.raises(FileNotFoundError):
        ipckit.open(f"shm://{name}")


def test_rm_reports_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rm", f"mq://{unique_name('nope')}"]) == 1
    assert "ipckit rm" in capsys.readouterr().err
