"""ipckit ls, stat, rm and gc, and list_channels and cleanup_stale, on every named backend."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import Any

import pytest

import ipckit
from ipckit._inventory import _Scan, plan_cleanup
from ipckit.backends import _ring as ring
from ipckit.cli import main
from ipckit.testing import unique_name

_CTX: Any = multiprocessing.get_context("fork")
BACKENDS = ["shm", "mq", "fifo"]


def _url(backend: str, tmp: Path) -> str:
    name = unique_name("adm")
    return f"fifo://{tmp}/{name}" if backend == "fifo" else f"{backend}://{name}"


def _objects_of(url: str, tmp: Path) -> list[str]:
    return [p for ch in ipckit.list_channels([str(tmp)]) if ch.url == url for p in ch.objects]


def _everything(tmp: Path, url: str) -> set[str]:
    """Every file in /dev/shm, /dev/mqueue and tmp that carries the channel's name."""
    name = url.rpartition("/")[2]
    found = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if name in n}
    if os.path.isdir("/dev/mqueue"):
        found |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue") if name in n}
    return found | {str(p) for p in tmp.iterdir() if name in p.name}


def _create_and_die(url: str, big: bool) -> None:
    ch = ipckit.open(url, create=True)
    ch.send_bytes(os.urandom(1 << 20) if big else b"x")  # a big one leaves a block
    os._exit(0)  # no close, no unlink: what a crashed creator leaves


def _hold(url: str, ready: Any, release: Any) -> None:
    with ipckit.open(url):
        ready.set()
        release.wait(30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ls_shows_every_backend(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(backend, tmp_path)
    with ipckit.open(url, create=True) as ch:
        ch.send("x")
        assert main(["ls", "--dir", str(tmp_path)]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(url))
        assert "depth=1" in line or backend == "fifo"  # a FIFO counts bytes, not messages
        assert f"creator={os.getpid()}(alive)" in line
        assert "in-use" in line
        assert main(["ls", "--json", "--dir", str(tmp_path)]) == 0
        (info,) = [c for c in json.loads(capsys.readouterr().out) if c["url"] == url]
        assert info["kind"] == backend
        assert info["in_use"] is True and info["stale"] is False
        assert info["creator_pid"] == os.getpid()
        assert set(info["objects"]) == _everything(tmp_path, url)
        ch.recv(timeout=5)
        ch.unlink()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stat_and_watch(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _url(backend, tmp_path)
    with ipckit.open(url, create=True) as ch:
        ch.send("x")
        assert main(["stat", url]) == 0
        assert url in capsys.readouterr().out
        assert main(["stat", url, "--watch", "--interval", "0.01", "--count", "2", "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2
        assert json.loads(lines[0])["url"] == url
        ch.recv(timeout=5)
        ch.unlink()
    assert main(["stat", url]) == 1
    assert "nothing of that name" in capsys.readouterr().err


@pytest.mark.parametrize("backend", BACKENDS)
def test_rm_removes_every_part(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(backend, tmp_path)
    ch = ipckit.open(url, create=True, **({"capacity": "64KiB"} if backend == "shm" else {}))
    try:
        ch.send_bytes(os.urandom(1 << 20))  # out of band: a block to remove too
        assert len(_everything(tmp_path, url)) > 1
        assert main(["rm", url]) == 0
        assert f"removed {url}" in capsys.readouterr().out
        assert _everything(tmp_path, url) == set()
    finally:
        ch.close()
    assert main(["rm", url]) == 1
    assert "nothing of that name" in capsys.readouterr().err


@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_removes_a_dead_creators_channel_only_once_nobody_holds_it(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(backend, tmp_path)
    maker = _CTX.Process(target=_create_and_die, args=(url, True))
    maker.start()
    maker.join(30)
    ready, release = _CTX.Event(), _CTX.Event()
    holder = _CTX.Process(target=_hold, args=(url, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        # No --dir: a fifo:// channel is found by the note it left in /dev/shm.
        (info,) = [c for c in ipckit.list_channels() if c.url == url]
        assert info.creator_alive is False and info.in_use and not info.stale
        assert main(["gc"]) == 0
        assert url not in capsys.readouterr().out
        assert _objects_of(url, tmp_path)  # still there: a process holds it
        release.set()
        holder.join(30)
        removed = ipckit.cleanup_stale(dry_run=True)
        assert set(_everything(tmp_path, url)) <= set(removed)
        assert _everything(tmp_path, url)  # a dry run removes nothing
        assert main(["gc"]) == 0
        assert f"removed {url}" in capsys.readouterr().out
        assert _everything(tmp_path, url) == set()
    finally:
        release.set()
        if holder.is_alive():
            holder.kill()
        holder.join(10)
        ipckit.cleanup_stale(fifo_dirs=[str(tmp_path)])


def test_gc_keeps_a_channel_whose_creator_lives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url("mq", tmp_path)
    ipckit.open(url, create=True).close()  # nobody holds it, but its creator (us) lives
    try:
        assert main(["gc", "--dry-run"]) == 0
        assert url not in capsys.readouterr().out
    finally:
        with ipckit.open(url) as ch:
            ch.unlink()


def test_gc_removes_half_made_queue_and_orphan_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    dead = _CTX.Process(target=os._exit, args=(0,))
    dead.start()
    dead.join(30)
    name = unique_name("adm")
    seg = shared_memory.SharedMemory(f"ikshm.{name}", create=True, size=8192)
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    ring.META.pack_into(seg.buf, 0, ring.MAGIC, ring.VERSION, 0, 0, 0, 0, dead.pid)  # never ready
    seg.close()
    orphan_owner = unique_name("gone")
    with open(f"/dev/shm/ikshm.{orphan_owner}~.oob.0123456789abcdef", "wb") as f:
        f.write(b"left behind")
    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove shm://{name} (never finished by its creator)" in out
    assert main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"removed shm://{name}" in out
    assert f"ikshm.{orphan_owner}~.oob." in out
    with pytest.raises(FileNotFoundError):
        ipckit.open(f"shm://{name}")


def test_gc_leaves_the_blocks_of_an_unlinked_channel_still_held(tmp_path: Path) -> None:
    url = _url("mq", tmp_path)
    with ipckit.open(url, create=True) as ch:
        ch.send_bytes(os.urandom(1 << 20))
        ch.unlink()  # gone from the directory, still open here
        removed = ipckit.cleanup_stale(dry_run=True)
        assert not [p for p in removed if url.rpartition("/")[2] in p]
        assert len(ch.recv_bytes(timeout=5)) == 1 << 20  # its block is still there


def test_an_unfinished_channel_of_an_unknown_creator_waits_before_it_is_stale() -> None:
    name = unique_name("adm")
    seg = shared_memory.SharedMemory(f"ikshm.{name}", create=True, size=8192)
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    seg.close()
    try:
        (info,) = [c for c in ipckit.list_channels() if c.url == f"shm://{name}"]
        assert info.problem and info.creator_alive is None
        assert not info.stale  # its creator may be writing the header right now
        time.sleep(0.01)
    finally:
        os.unlink(f"/dev/shm/ikshm.{name}")


def test_rm_reports_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rm", f"mq://{unique_name('nope')}"]) == 1
    assert "ipckit rm" in capsys.readouterr().err


def test_gc_never_takes_the_blocks_of_a_channel_whose_name_extends_a_stale_one() -> None:
    stale_name, live_name = unique_name("adm"), ""
    live_name = f"{stale_name}.b"  # "x" and "x.b": a prefix must not be a match
    maker = _CTX.Process(target=_create_and_die, args=(f"mq://{stale_name}", True))
    maker.start()
    maker.join(30)
    with ipckit.open(f"mq://{live_name}", create=True) as live:
        live.send_bytes(os.urandom(1 << 20))  # its block: ikmq.<x>.b.<id>.oob.<random>
        mine = set(_objects_of(live.url, Path("/nonexistent")))
        assert any(".oob." in p for p in mine)
        removed = ipckit.cleanup_stale()
        assert f"/dev/mqueue/{stale_name}" in removed
        # (Not "live_name in p": the stale block's id may begin with "b".)
        assert not mine & set(removed), removed
        assert len(live.recv_bytes(timeout=5)) == 1 << 20
        live.unlink()


def _open_unfinished(name: str, ready: Any, release: Any) -> None:
    # A creator still making its channel: a zeroed header, the segment open, no flock yet.
    seg = shared_memory.SharedMemory(f"ikshm.{name}", create=True, size=8192)
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    ready.set()
    release.wait(30)
    seg.close()
    seg.unlink()


def test_a_channel_being_made_is_never_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipckit import _inventory

    monkeypatch.setattr(_inventory, "UNFINISHED_AFTER", 0.0)  # as if its creator were slow
    name = unique_name("adm")
    ready, release = _CTX.Event(), _CTX.Event()
    maker = _CTX.Process(target=_open_unfinished, args=(name, ready, release))
    maker.start()
    try:
        assert ready.wait(30)
        (info,) = [c for c in ipckit.list_channels() if c.url == f"shm://{name}"]
        assert info.unfinished and info.in_use and not info.stale
        assert not [p for p in ipckit.cleanup_stale() if name in p]
    finally:
        release.set()
        maker.join(30)


def test_what_is_not_ipckits_is_never_stale() -> None:
    name = unique_name("adm")
    path = f"/dev/shm/ikshm.{name}"
    with open(path, "wb") as f:
        f.write(b"somebody else's data" + bytes(300))  # no ipckit magic: a foreign file
    try:
        (info,) = [c for c in ipckit.list_channels() if c.url == f"shm://{name}"]
        assert info.problem == "not ipckit's" and info.creator_pid == 0 and not info.stale
        assert path not in ipckit.cleanup_stale()
    finally:
        os.unlink(path)


def test_gc_checks_each_channel_again_before_it_goes(tmp_path: Path) -> None:
    from ipckit import _inventory

    url = _url("mq", tmp_path)
    maker = _CTX.Process(target=_create_and_die, args=(url, False))
    maker.start()
    maker.join(30)
    stale, _ = _inventory.plan_cleanup()
    (old,) = [c for c in stale if c.url == url]
    with ipckit.open(url) as ch:  # someone attached after the listing
        assert not _inventory.remove_if_still_stale(old)
        assert _everything(tmp_path, url)
        ch.unlink()


def test_a_fifo_channel_is_found_without_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url("fifo", tmp_path)
    with ipckit.open(url, create=True) as ch:
        (info,) = [c for c in ipckit.list_channels() if c.url == url]
        notes = [p for p in info.objects if p.startswith("/dev/shm/") and p.endswith(".at")]
        assert len(notes) == 1
        assert os.stat(notes[0]).st_mode & 0o777 == 0o600
        assert Path(notes[0]).read_text() == url.removeprefix("fifo://")
        assert main(["ls"]) == 0
        assert url in capsys.readouterr().out
        ch.unlink()
        assert not os.path.exists(notes[0])
    assert [c for c in ipckit.list_channels() if c.url == url] == []


@pytest.mark.parametrize("held", [False, True], ids=["unheld", "held"])
def test_gc_collects_what_a_fifo_removed_behind_its_back_left(tmp_path: Path, held: bool) -> None:
    """The FIFO and state file deleted by hand: the note and blocks go once nobody holds them."""
    url = _url("fifo", tmp_path)
    path = url.removeprefix("fifo://")
    maker = _CTX.Process(target=_create_and_die, args=(url, True))  # leaves a block
    maker.start()
    maker.join(30)
    ready, release = _CTX.Event(), _CTX.Event()
    holder = _CTX.Process(target=_hold, args=(url, ready, release))
    if held:
        holder.start()
        assert ready.wait(30)
    try:
        os.unlink(path)  # what a tmp cleaner, or rm -rf of the directory, does
        os.unlink(path + ".ikstate")
        left = _everything(tmp_path, url)
        assert [p for p in left if p.endswith(".at")] and [p for p in left if ".oob." in p]
        if held:
            _, orphans = plan_cleanup()
            assert not set(orphans) & left  # the holder may still receive the big message
            release.set()
            holder.join(30)
            left = _everything(tmp_path, url)  # its last close swept the block already
            assert [p for p in left if p.endswith(".at")]
        _, orphans = plan_cleanup()
        assert set(orphans) >= left
        ipckit.cleanup_stale()
        assert _everything(tmp_path, url) == set()
    finally:
        release.set()
        if holder.is_alive():
            holder.kill()
        if held:
            holder.join(10)
        ipckit.cleanup_stale()


def test_a_note_that_does_not_match_its_name_is_left_alone(tmp_path: Path) -> None:
    name = unique_name("forged")
    note = Path(f"/dev/shm/ikfifo.{name}.0123456789ab.at")
    note.write_text(str(tmp_path / "somewhere-else"))  # its base is not the note's
    try:
        assert str(note) not in plan_cleanup()[1]
        assert [c for c in ipckit.list_channels() if "somewhere-else" in c.url] == []
    finally:
        note.unlink()


def test_gc_keeps_a_held_fifo_reached_through_a_symlink(tmp_path: Path) -> None:
    """Holders are known by creation id, so a path spelled differently does not fool gc."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    name = unique_name("adm")
    url = f"fifo://{tmp_path}/link/{name}"
    a = ipckit.open(url, create=True)
    b = ipckit.open(url)
    big = os.urandom(1 << 20)
    try:
        a.send_bytes(big)
        os.unlink(real / name)  # removed behind ipckit's back, while both handles live
        os.unlink(real / f"{name}.ikstate")
        if not _Scan.now().complete:
            pytest.skip("another user's processes hide what they hold")
        left = _everything(real, url)
        assert [p for p in left if p.endswith(".at")] and [p for p in left if ".oob." in p]
        assert not set(plan_cleanup()[1]) & left
        ipckit.cleanup_stale()
        assert b.recv_bytes(timeout=10) == big
    finally:
        b.close()
        a.close()
        ipckit.cleanup_stale()
    assert _everything(real, url) == set()


def _list_in_child(results: Any) -> None:
    results.put(len(ipckit.list_channels()))


def test_a_note_pointing_at_a_fifo_state_file_does_not_hang_ls(tmp_path: Path) -> None:
    name = unique_name("forged")
    os.mkfifo(tmp_path / f"{name}.ikstate")  # opening it for reading would wait for a writer
    os.mkfifo(tmp_path / name)
    note = Path(f"/dev/shm/ikfifo.{name}.0123456789ab.at")
    note.write_text(str(tmp_path / name))
    results = _CTX.Queue()
    proc = _CTX.Process(target=_list_in_child, args=(results,))
    proc.start()
    try:
        results.get(timeout=30)
        proc.join(30)
        assert proc.exitcode == 0
        assert str(note) not in plan_cleanup()[1]  # it may be a channel: never taken
    finally:
        if proc.is_alive():
            proc.kill()
        results.close()
        results.join_thread()
        note.unlink()


def test_the_note_is_never_writable_by_others(tmp_path: Path) -> None:
    url = _url("fifo", tmp_path)
    with ipckit.open(url, create=True, mode=0o666) as ch:
        (note,) = [
            p
            for c in ipckit.list_channels()
            if c.url == url
            for p in c.objects
            if p.endswith(".at")
        ]
        assert os.stat(note).st_mode & 0o777 == 0o644
        ch.unlink()


def _unlink_as_nobody(url: str, results: Any) -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        with ipckit.open(url) as ch:
            ch.unlink()
        results.put("unlinked")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a second uid needs root")
def test_another_user_may_unlink_a_shared_fifo(tmp_path: Path) -> None:
    """The creator's note in sticky /dev/shm is not theirs to remove: the FIFO still goes."""
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp is root's alone
    shared.chmod(0o777)  # not sticky: anyone may remove what is in it
    url = _url("fifo", shared)
    owner = ipckit.open(url, create=True, mode=0o666)
    results = _CTX.Queue()
    try:
        proc = _CTX.Process(target=_unlink_as_nobody, args=(url, results))
        proc.start()
        assert results.get(timeout=30) == "unlinked"
        proc.join(30)
        assert not os.path.exists(url.removeprefix("fifo://"))
    finally:
        owner.unlink()  # the creator's unlink() takes the note it left
        owner.close()
        results.close()
        results.join_thread()
        shutil.rmtree(shared)


def test_gc_collects_the_blocks_of_an_unlinked_fifo_whose_last_holder_was_killed(
    tmp_path: Path,
) -> None:
    """unlink() took the note; the holder died: the blocks are nobody's (the FIFO died too)."""
    url = _url("fifo", tmp_path)
    ready = _CTX.Event()
    holder = _CTX.Process(target=_hold_until_killed, args=(url, ready))
    with ipckit.open(url, create=True) as a:
        a.send_bytes(os.urandom(1 << 20))
        holder.start()
        assert ready.wait(30)
        a.unlink()
    try:
        blocks = {p for p in _everything(tmp_path, url) if ".oob." in p}
        assert blocks
        holder.kill()
        holder.join(30)
        if not _Scan.now().complete:
            pytest.skip("another user's processes hide what they hold")
        assert set(plan_cleanup()[1]) >= blocks
        ipckit.cleanup_stale()
        assert _everything(tmp_path, url) == set()
    finally:
        if holder.is_alive():
            holder.kill()
        holder.join(10)


def _hold_until_killed(url: str, ready: Any) -> None:
    # No Event to wait on: notifying one whose waiter was killed never returns.
    with ipckit.open(url):
        ready.set()
        time.sleep(60)
