"""mq:// and fifo:// at their edges: names, full disks, readiness, options, unlink, close.

Every scenario runs with real processes (fork children, subprocesses, a private
mount namespace for a full /dev/shm) and real signals.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import ipckit
from ipckit._oob import SHM_DIR
from ipckit._url import OptionSpec, check_attach_options
from ipckit.backends.fifo import STATE_SUFFIX, pipe_max_size
from ipckit.testing import unique_name

BOUND = 30
CTX = multiprocessing.get_context("fork")
MQUEUE = "/dev/mqueue"
KINDS = ["mq", "fifo"]


def _url_for(kind: str, name: str | None = None) -> str:
    name = name or unique_name(kind)
    if kind == "mq":
        return "mq://" + name
    return "fifo://" + os.path.join(tempfile.gettempdir(), name)


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    u = _url_for(request.param)
    yield u
    address = u.partition("://")[2]
    if u.startswith("mq://") and os.path.isdir(MQUEUE):
        assert address not in os.listdir(MQUEUE), "queue left behind"
    if u.startswith("fifo://"):
        assert not os.path.exists(address) and not os.path.exists(address + STATE_SUFFIX)
    base = os.path.basename(address)
    assert not [n for n in os.listdir(SHM_DIR) if base in n], "state or blocks left behind"


def _prefix(ch: ipckit.Channel) -> str:
    return ch._transport._oob_prefix  # type: ignore[attr-defined,no-any-return]


def _blocks(prefix: str) -> list[str]:
    return [n for n in os.listdir(SHM_DIR) if n.startswith(prefix + ".oob.")]


def _run(target: Any, *args: Any) -> int:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    proc.join(BOUND)
    if proc.is_alive():
        proc.kill()
        proc.join(BOUND)
        raise AssertionError("child did not finish in time")
    assert proc.exitcode is not None
    return proc.exitcode


# -- item 5: names ---------------------------------------------------------------------


def test_nul_byte_in_mq_name_is_a_clear_error_not_a_crash() -> None:
    # In a subprocess: before the fix posix_ipc died of SIGSEGV, which would kill pytest.
    code = textwrap.dedent(
        """
        import ipckit
        for url in ("mq://a%00b", "mq://a\\x00b"):
            try:
                ipckit.open(url, create=True)
            except ipckit.ConfigurationError as exc:
                assert "NUL" in str(exc), exc
            else:
                raise SystemExit("accepted " + repr(url))
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("length", [217, 229, 230, 242, 243, 250, 256])
def test_mq_names_too_long_for_any_derived_object_are_refused(length: int) -> None:
    name = unique_name("mq")
    name += "x" * (length - len(name))
    with pytest.raises(ipckit.ConfigurationError, match=r"NAME_MAX=255.*at most 216 bytes"):
        ipckit.open("mq://" + name, create=True)
    assert not os.path.exists(f"{MQUEUE}/{name}")


def test_mq_longest_name_carries_big_messages() -> None:
    name = unique_name("mq")
    name += "x" * (216 - len(name))
    url = "mq://" + name
    with ipckit.open(url, create=True) as a, ipckit.open(url) as b:
        big = os.urandom(100_000)
        a.send_bytes(big, timeout=BOUND)
        assert b.recv_bytes(timeout=BOUND) == big
        a.unlink()


def test_fifo_long_names_and_paths_are_refused() -> None:
    tmp = tempfile.gettempdir()
    with pytest.raises(ipckit.ConfigurationError, match=r"NAME_MAX=255.*at most 247 bytes"):
        ipckit.open("fifo://" + os.path.join(tmp, "f" * 248), create=True)
    with pytest.raises(ipckit.ConfigurationError, match="NAME_MAX"):
        ipckit.open("fifo://" + os.path.join(tmp, "f" * 300), create=True)
    deep = os.path.join(tmp, *(["d" * 200] * 21), "q")
    with pytest.raises(ipckit.ConfigurationError, match="PATH_MAX=4096"):
        ipckit.open("fifo://" + deep, create=True)
    with pytest.raises(ipckit.ConfigurationError, match="NUL"):
        ipckit.open("fifo://" + os.path.join(tmp, "a%00b"), create=True)
    with pytest.raises(ipckit.ConfigurationError, match="does not name a file"):
        ipckit.open("fifo://" + tmp + "/", create=True)


def test_fifo_longest_basename_works_with_a_big_message() -> None:
    name = unique_name("fifo")
    path = os.path.join(tempfile.gettempdir(), name + "y" * (247 - len(name)))
    with ipckit.open("fifo://" + path, create=True) as a:
        a.send_bytes(b"z" * 50_000, timeout=BOUND)
        assert a.recv_bytes(timeout=BOUND) == b"z" * 50_000
        a.unlink()


# -- item 6: full /dev/shm ---------------------------------------------------------------

_FULL_SHM = textwrap.dedent(
    """
    import os, sys
    import ipckit
    name = sys.argv[1]

    def fill():
        # Fill the private 64 KiB tmpfs up to the last page.
        fd = os.open("/dev/shm/filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        os.close(fd)

    fill()
    try:
        ipckit.open("mq://" + name, create=True)
    except ipckit.TransportError as exc:
        text = str(exc)
        assert "/dev/shm" in text and "full" in text and "bytes were needed" in text, text
        print("create-refused")
    assert os.path.exists("/dev/mqueue/" + name) is False, "queue left behind"
    assert [n for n in os.listdir("/dev/shm") if name in n] == [], os.listdir("/dev/shm")
    # Now with room for the state file but not for an out-of-band block.
    os.unlink("/dev/shm/filler")
    with ipckit.open("mq://" + name, create=True) as ch:
        fill()
        try:
            ch.send_bytes(os.urandom(200_000), timeout=5)
        except ipckit.TransportError as exc:
            assert "full" in str(exc) and "200000 bytes were needed" in str(exc), exc
            print("block-refused")
        assert [n for n in os.listdir("/dev/shm") if ".oob." in n] == []
        ch.send_bytes(b"small still works", timeout=5)
        assert ch.recv_bytes(timeout=5) == b"small still works"
        ch.unlink()
    os.unlink("/dev/shm/filler")
    try:
        ipckit.open("shm://" + name, create=True, capacity="1MiB")  # 64 KiB is all there is
    except ipckit.TransportError as exc:
        assert "full" in str(exc) and "capacity=" in str(exc), exc
        print("shm-refused")
    assert [n for n in os.listdir("/dev/shm") if name in n] == [], os.listdir("/dev/shm")
    """
)


def test_full_dev_shm_is_a_clear_error_and_leaves_nothing() -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a private tiny /dev/shm")
    name = unique_name("mq")
    script = (
        f'mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 77; exec {sys.executable} -c "$0" "$1"'
    )
    out = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script, _FULL_SHM, name],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    if out.returncode == 77 or "Operation not permitted" in out.stderr:
        pytest.skip(f"cannot mount a private /dev/shm here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["create-refused", "block-refused", "shm-refused"]
    assert not os.path.exists(f"{MQUEUE}/{name}")


# -- item 8: fileno readiness ------------------------------------------------------------


def _send_twenty(url: str) -> None:
    with ipckit.open(url) as ch:
        ch.send_many(list(range(20)), timeout=BOUND)


def test_selector_loop_gets_every_message_of_a_batch(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        assert _run(_send_twenty, url) == 0
        got: list[int] = []
        with selectors.DefaultSelector() as sel:
            sel.register(ch.fileno(), selectors.EVENT_READ)
            while len(got) < 20:
                assert sel.select(timeout=5), f"fileno went quiet with {len(got)} of 20"
                got.append(ch.recv(timeout=0))
            assert sel.select(timeout=0) == []  # level-triggered, and now nothing is ready
        assert got == list(range(20))
        ch.unlink()


def test_fileno_is_per_process_after_fork(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        ch.fileno()

        def child() -> None:
            with selectors.DefaultSelector() as sel:
                sel.register(ch.fileno(), selectors.EVENT_READ)
                if not sel.select(timeout=5):
                    os._exit(3)
                os._exit(0 if ch.recv(timeout=0) == "hi" else 4)

        ch.send("hi", timeout=BOUND)
        assert _run(child) == 0
        ch.unlink()


# -- item 13: poll asks, close puts back ---------------------------------------------------


def _poll_and_exit(url: str) -> None:
    with ipckit.open(url) as ch:
        assert ch.poll(BOUND)


def test_poll_in_another_process_takes_nothing(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        ch.send_many(["a", "b", "c"], timeout=BOUND)
        assert _run(_poll_and_exit, url) == 0
        assert ch.recv_many(10, timeout=BOUND) == ["a", "b", "c"]
        ch.unlink()


def _take_one_of_a_batch(url: str) -> None:
    with ipckit.open(url) as ch:
        assert ch.recv(timeout=BOUND) == 0  # the rest of the unit stays in this handle


def test_close_puts_buffered_frames_back(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        big = os.urandom(50_000)
        ch.send_many([0, 1, big, 3, 4], timeout=BOUND)
        assert _run(_take_one_of_a_batch, url) == 0
        assert ch.recv_many(10, timeout=BOUND) == [1, big, 3, 4]
        ch.unlink()


def test_forked_child_never_delivers_the_parents_buffered_frames(url: str) -> None:
    with ipckit.open(url, create=True) as ch:
        ch.send_many([0, 1, 2], timeout=BOUND)
        assert ch.recv(timeout=BOUND) == 0

        def child() -> None:
            try:
                ch.recv(timeout=0.2)
                os._exit(5)  # got a frame the parent holds
            except ipckit.Empty:
                os._exit(0)

        assert _run(child) == 0
        assert ch.recv_many(10, timeout=BOUND) == [1, 2]
        ch.unlink()


# -- item 4: out-of-band messages survive unlink and interrupts ------------------------------


def _receive_big_after_unlink(url: str, up: str, down: str, size: int) -> None:
    with ipckit.open(url) as ch, ipckit.open(up) as out, ipckit.open(down) as inbox:
        out.send("attached", timeout=BOUND)
        assert inbox.recv(timeout=BOUND) == "unlinked"
        data = ch.recv_bytes(timeout=BOUND)
        out.send(len(data) == size and data == bytes(range(256)) * (size // 256), timeout=BOUND)


def test_unlink_keeps_big_messages_for_attached_handles(url: str) -> None:
    up, down = _url_for("mq"), _url_for("mq")
    size = 256 * 1024
    with (
        ipckit.open(url, create=True) as ch,
        ipckit.open(up, create=True) as rep,
        ipckit.open(down, create=True) as cmd,
    ):
        proc = CTX.Process(target=_receive_big_after_unlink, args=(url, up, down, size))
        proc.start()
        try:
            assert rep.recv(timeout=BOUND) == "attached"
            ch.send_bytes(bytes(range(256)) * (size // 256), timeout=BOUND)
            prefix = _prefix(ch)
            ch.unlink()
            ch.close()
            assert len(_blocks(prefix)) == 1  # the child still holds the queue
            cmd.send("unlinked", timeout=BOUND)
            assert rep.recv(timeout=BOUND) is True
        finally:
            proc.join(BOUND)
        assert proc.exitcode == 0
        assert _blocks(prefix) == []  # the last handle swept
        rep.unlink()
        cmd.unlink()


def _interrupted_big_sends(url: str, rounds: int) -> None:
    class Interrupt(Exception):
        pass

    armed = [False]

    def handler(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise Interrupt

    signal.signal(signal.SIGALRM, handler)
    sent = interrupted = 0
    with ipckit.open(url) as ch:
        for i in range(rounds):
            payload = i.to_bytes(4, "little") * 5000
            try:
                armed[0] = True
                signal.setitimer(signal.ITIMER_REAL, 0.00005 + (i % 7) * 0.00003)
                ch.send_bytes(payload, timeout=BOUND)
                sent += 1
            except Interrupt:
                interrupted += 1
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    os._exit(0 if sent + interrupted == rounds and interrupted > 0 else 6)


def test_interrupt_right_after_a_big_send_never_deletes_a_queued_block(url: str) -> None:
    rounds = 300
    options: dict[str, Any] = {"max_messages": 10} if url.startswith("mq://") else {}
    with ipckit.open(url, create=True, **options) as ch:
        proc = CTX.Process(target=_interrupted_big_sends, args=(url, rounds), daemon=True)
        proc.start()
        seen = 0
        while True:
            try:
                data = ch.recv_bytes(timeout=0.5)
            except ipckit.Empty:
                if not proc.is_alive():
                    break
                continue
            # A reference whose block was deleted raises ProtocolError here.
            assert data == data[:4] * 5000
            seen += 1
        proc.join(BOUND)
        assert proc.exitcode == 0
        assert seen > 0
        prefix = _prefix(ch)
        ch.unlink()
    assert _blocks(prefix) == []


# -- item 9: options and identity ------------------------------------------------------------


def test_fifo_attach_does_not_resize_and_big_pipe_size_is_refused() -> None:
    url = _url_for("fifo")
    with ipckit.open(url, create=True, pipe_size="64KiB") as a:
        with ipckit.open(url) as b:
            assert b.stats().capacity == 64 * 1024
        assert a.stats().capacity == 64 * 1024
        with pytest.raises(ipckit.ConfigurationError, match=r"pipe_size.*create=True"):
            ipckit.open(url, pipe_size="64KiB")
        a.unlink()
    limit = pipe_max_size()
    with pytest.raises(ipckit.ConfigurationError, match=r"fs\.pipe-max-size"):
        ipckit.open(_url_for("fifo"), create=True, pipe_size=limit * 2)
    with pytest.raises(ipckit.ConfigurationError, match="at least 4096"):
        ipckit.open(_url_for("fifo"), create=True, pipe_size=100)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_messages": 0}, "max_messages must be at least 1, not 0"),
        ({"max_messages": -1}, "max_messages must be at least 1, not -1"),
        ({"message_size": 100}, "message_size must be at least 512"),
        ({"mode": 0o4777}, "mode must be permission bits"),
        ({"priority": 40000}, "priority"),
    ],
)
def test_mq_invalid_values_are_clear_errors(options: dict[str, Any], match: str) -> None:
    url = _url_for("mq")
    with pytest.raises(ipckit.ConfigurationError, match=match):
        ipckit.open(url, create=True, **options)
    assert not os.path.exists(f"{MQUEUE}/{url.removeprefix('mq://')}")


@pytest.mark.parametrize("option", ["max_messages", "message_size", "mode"])
def test_mq_creator_only_options_refused_on_attach(option: str) -> None:
    url = _url_for("mq")
    value = {"max_messages": 5, "message_size": 1024, "mode": 0o600}[option]
    with ipckit.open(url, create=True) as a:
        with pytest.raises(ipckit.ConfigurationError, match=f"'{option}'.*create=True"):
            ipckit.open(url, **{option: value})
        with ipckit.open(url, priority=3):  # a per-handle option is fine
            pass
        a.unlink()


def test_check_attach_options() -> None:
    specs = {
        "capacity": OptionSpec("size", None, creator_only=True),
        "spin": OptionSpec("int", 0),
    }
    check_attach_options(specs, ["capacity", "spin"], True, "open(shm://x)")
    check_attach_options(specs, ["spin"], False, "open(shm://x)")
    with pytest.raises(ipckit.ConfigurationError, match=r"'capacity' of open\(shm://x\)"):
        check_attach_options(specs, ["spin", "capacity"], False, "open(shm://x)")


def test_stale_handle_unlink_never_removes_a_newer_channel(url: str) -> None:
    old_creator = ipckit.open(url, create=True)
    stale = ipckit.open(url)
    old_creator.unlink()
    old_creator.close()
    with ipckit.open(url, create=True) as new:
        stale.unlink()  # a no-op: the name belongs to a newer channel now
        stale.close()
        with ipckit.open(url) as again:
            again.send("still here", timeout=BOUND)
        assert new.recv(timeout=BOUND) == "still here"
        new.unlink()


# -- item 11: errors -------------------------------------------------------------------------


def test_fifo_missing_directory_says_so() -> None:
    with pytest.raises(
        ipckit.ChannelNotFound, match="directory /nonexistent-dir does not exist"
    ) as e:
        ipckit.open("fifo:///nonexistent-dir/x", create=True)
    assert "create=True" not in str(e.value)


def _attach_as_nobody(url: str) -> None:
    os.setgid(65534)
    os.setuid(65534)
    try:
        ipckit.open(url)
    except ipckit.PermissionDenied as exc:
        os._exit(0 if "permission denied" in str(exc) else 7)
    except BaseException:
        os._exit(8)
    os._exit(9)


def test_permission_errors_are_permission_denied(url: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    with ipckit.open(url, create=True) as ch:
        assert _run(_attach_as_nobody, url) == 0
        ch.unlink()


def test_fifo_errors_keep_their_meaning() -> None:
    from ipckit._oserror import os_error_to_ipc

    closed = os_error_to_ipc(BrokenPipeError(errno.EPIPE, "Broken pipe"), "writing fifo://x")
    assert isinstance(closed, ipckit.ChannelClosed)
    url = _url_for("fifo")
    with ipckit.open(url, create=True) as ch:
        ch.unlink()
        transport: Any = ch._transport
        fd = transport._fd
        os.close(fd)  # as if another thread closed it underneath
        with pytest.raises(ipckit.HandleClosed):
            transport._try_write(b"x" * 16)
        transport._fd = os.open(os.devnull, os.O_RDONLY)  # something for close() to close


def test_rm_of_an_absent_mq_says_nothing_of_that_name_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ipckit.cli import main

    url = _url_for("mq")
    assert main(["rm", url]) == 1
    err = capsys.readouterr().err
    assert "nothing of that name exists" in err and "create=True" not in err
