"""The public face: names, docstrings, error hierarchy, import layering, typing."""

from __future__ import annotations

import ast
import inspect
import pathlib
import queue

import pytest

import ipckit

PACKAGE = pathlib.Path(ipckit.__file__).parent


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in ipckit.__all__:
        obj = getattr(ipckit, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if (inspect.isfunction(member) or isinstance(member, property)) and not (
                        member.__doc__
                    ):
                        missing.append(f"{name}.{attr}")
    assert not missing, f"public names without docstrings: {missing}"


def test_all_is_exact() -> None:
    public = {
        n for n in dir(ipckit) if not n.startswith("_") and not inspect.ismodule(getattr(ipckit, n))
    }
    exported = set(ipckit.__all__) - {"__version__"}
    stray = public - exported
    assert not stray, f"names visible but not in __all__: {stray}"
    assert "__version__" in ipckit.__all__


def test_error_hierarchy() -> None:
    e = ipckit
    assert issubclass(e.ChannelClosed, (e.IPCError, EOFError))
    assert issubclass(e.ChannelClosed, EOFError)
    assert issubclass(e.Timeout, e.IPCError) and issubclass(e.Timeout, TimeoutError)
    assert issubclass(e.Empty, e.Timeout) and issubclass(e.Empty, queue.Empty)
    assert issubclass(e.Full, e.Timeout) and issubclass(e.Full, queue.Full)
    assert issubclass(e.MessageTooLarge, e.IPCError) and issubclass(e.MessageTooLarge, ValueError)
    assert issubclass(e.SerializationError, e.IPCError)
    assert issubclass(e.SerializationError, ValueError)
    assert issubclass(e.ProtocolError, e.IPCError)
    assert issubclass(e.AuthenticationError, e.IPCError)
    assert issubclass(e.ChannelExists, FileExistsError)
    assert issubclass(e.ChannelNotFound, FileNotFoundError)
    assert issubclass(e.HandleClosed, e.ChannelClosed)
    assert issubclass(e.ConfigurationError, ValueError)


def test_os_errors_translate() -> None:
    import errno

    import posix_ipc

    from ipckit._oserror import os_error_to_ipc

    assert isinstance(os_error_to_ipc(FileExistsError(errno.EEXIST, "x"), "w"), FileExistsError)
    assert isinstance(os_error_to_ipc(FileNotFoundError(errno.ENOENT, "x"), "w"), ipckit.IPCError)
    assert isinstance(os_error_to_ipc(BrokenPipeError(errno.EPIPE, "x"), "w"), ipckit.ChannelClosed)
    assert isinstance(os_error_to_ipc(PermissionError(errno.EACCES, "x"), "w"), PermissionError)
    generic = os_error_to_ipc(OSError(errno.EIO, "io"), "doing it")
    assert isinstance(generic, ipckit.TransportError) and generic.errno == errno.EIO
    assert "doing it" in str(generic)
    # posix_ipc carries no errno: the operation decides, never the message text.
    for text in ("No queue exists with the specified name", "already exists", "x"):
        gone = os_error_to_ipc(posix_ipc.ExistentialError(text), "w", "attach")
        assert isinstance(gone, ipckit.ChannelNotFound)
        there = os_error_to_ipc(posix_ipc.ExistentialError(text), "w", "create")
        assert isinstance(there, ipckit.ChannelExists)
        closed = os_error_to_ipc(posix_ipc.ExistentialError(text), "w")
        assert isinstance(closed, ipckit.HandleClosed)
    denied = os_error_to_ipc(posix_ipc.PermissionsError("x"), "w")
    assert isinstance(denied, ipckit.PermissionDenied) and isinstance(denied, PermissionError)
    assert isinstance(os_error_to_ipc(OSError(errno.EPERM, "x"), "w"), ipckit.PermissionDenied)
    assert isinstance(os_error_to_ipc(OSError(errno.EPIPE, "x"), "w"), ipckit.ChannelClosed)
    assert isinstance(os_error_to_ipc(OSError(errno.EBADF, "x"), "w"), ipckit.HandleClosed)
    too_long = os_error_to_ipc(OSError(errno.ENAMETOOLONG, "x"), "w")
    assert isinstance(too_long, ipckit.ConfigurationError)
    missing_dir = os_error_to_ipc(FileNotFoundError(errno.ENOENT, "x", "/a/b"), "w", "create")
    assert "directory" in str(missing_dir) and "create=True" not in str(missing_dir)
    files = os_error_to_ipc(OSError(errno.EMFILE, "x"), "w")
    assert isinstance(files, ipckit.TransportError) and "RLIMIT_NOFILE" in str(files)


def test_permission_denied_and_queue_limit_are_public() -> None:
    from ipckit import _oserror
    from ipckit.backends import mq

    assert ipckit.PermissionDenied is _oserror.PermissionDenied
    assert ipckit.QueueLimitError is mq.QueueLimitError
    assert issubclass(ipckit.QueueLimitError, ipckit.ConfigurationError)
    assert issubclass(ipckit.PermissionDenied, (ipckit.IPCError, PermissionError))


LAYERS = {
    "errors": 0,
    "_oserror": 0,
    "_names": 1,
    "_deadline": 0,
    "_critical": 0,
    "serializers": 1,
    "_url": 1,
    "_framing": 2,
    "_oob": 2,
    "_sync": 2,
    "_transport": 3,
    "_accel": 3,
    "_core": 2,
    "backends": 4,
    "channel": 5,
    "_inventory": 5,
    "testing": 6,
    "aio": 6,
    "_bench": 7,
    "_admin": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 10,
}


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "ipckit" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_point_down_the_layers(path: pathlib.Path) -> None:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(rel.parts)
    if module.endswith(".__init__"):
        module = module[: -len(".__init__")]
    own = _layer_of(module) if module != "ipckit" else LAYERS["__init__"]
    assert own is not None, f"{module} is not placed in a layer; add it to LAYERS"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            layer = _layer_of(target)
            if layer is None:
                continue
            assert layer <= own, f"{module} imports {target}, which is above it"
            if module.startswith("ipckit.backends.") and target.startswith("ipckit.backends."):
                own_mod, other = module.split(".")[2], target.split(".")[2]
                assert own_mod == other or other.startswith("_"), (
                    f"backend {module} imports another backend {target}"
                )


def test_py_typed_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()
