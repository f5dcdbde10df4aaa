"""Suite-wide habits: every test is leak-checked and uses unique OS names."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from ipckit import _accel
from ipckit.testing import NAME_PREFIX
from tests.fuzzing import write_figures

#: Both implementations, for tests that run a check on each (the C core when built).
PATHS = [pytest.param(True, id="pure")]
if _accel.built():
    PATHS.append(pytest.param(False, id="native"))


@pytest.fixture(params=PATHS)
def pure(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Handles opened in the test take the pure path (True) or the C core (False)."""
    was = _accel.core is None
    _accel.set_pure(request.param)
    try:
        yield bool(request.param)
    finally:
        _accel.set_pure(was)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long fault-injection trials")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow trial: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


def _ours(name: str) -> bool:
    # unique_name() embeds the test process id, so runs side by side never blame each other.
    return NAME_PREFIX in name and f"-{os.getpid()}-" in name


def _ipc_objects() -> set[str]:
    found = {f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if _ours(n)}
    if os.path.isdir("/dev/mqueue"):
        found |= {f"/dev/mqueue/{n}" for n in os.listdir("/dev/mqueue") if _ours(n)}
    return found


def _tracker_fds() -> set[int]:
    """Descriptors multiprocessing keeps for its own helper processes."""
    fds = set()
    try:
        from multiprocessing import resource_tracker

        fd = getattr(resource_tracker._resource_tracker, "_fd", None)
        if fd is not None:
            fds.add(fd)
    except ImportError:
        pass
    return fds


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves descriptors or shared-memory/queue objects behind."""
    before_fds = _fds()
    before_objs = _ipc_objects()
    yield
    gc.collect()
    after_fds = _fds()
    leaked = {
        fd: target
        for fd, target in after_fds.items()
        if fd not in before_fds and fd not in _tracker_fds() and not target.startswith("/proc/")
    }
    leaked_objs = _ipc_objects() - before_objs
    problems = []
    if leaked:
        problems.append(f"file descriptors left open: {leaked}")
    if leaked_objs:
        problems.append(f"IPC objects left behind: {sorted(leaked_objs)}")
    if problems:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(problems), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite: count what it left in /dev/shm and /dev/mqueue (must be 0).

    With ``IPCKIT_FIGURES=FILE``, also append the fuzz example counts (tests/fuzzing.py).
    """
    figures = os.environ.get("IPCKIT_FIGURES")
    if figures:
        write_figures(figures)
    left = sorted(_ipc_objects())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"IPC objects left behind by the whole suite: {len(left)}")
    if left:
        if reporter is not None:
            for path in left[:20]:
                reporter.write_line(f"  {path}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
