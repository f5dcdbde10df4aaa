"""Build the optional C core, ``ipckit._core``; everything else is in pyproject.toml.

The extension is optional: when there is no compiler, no Python headers, or the
build fails for any other reason, the install goes on without it and ipckit runs
its pure-Python reference code (``ipckit.native`` is then False). Set
``IPCKIT_REQUIRE_NATIVE=1`` to make a failed build an error instead (CI does), and
``IPCKIT_STRICT_BUILD=1`` to add ``-Werror`` (CI does; a user's newer compiler may
warn about things ours does not, and that must not cost them the speed-up).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wno-missing-field-initializers",
]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure install when the C build fails."""

    def run(self) -> None:
        """Build, or warn and go on pure."""
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "install pure"
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        """Build one extension, or warn and go on pure."""
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        if _flag("IPCKIT_REQUIRE_NATIVE"):
            raise exc
        sys.stderr.write(
            f"warning: ipckit's C core was not built ({exc}); ipckit will run its pure-Python "
            "code, which is correct but slower. Install a C compiler and the Python headers "
            "and reinstall to get the fast path.\n"
        )


extra = ["-O2", "-std=c11", *WARNINGS]
if _flag("IPCKIT_STRICT_BUILD"):
    extra.append("-Werror")
if _flag("IPCKIT_SANITIZE"):
    # AddressSanitizer + UBSan build for scripts/sanitize.sh (needs LD_PRELOAD of libasan).
    extra += [
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=undefined",
    ]

setup(
    ext_modules=[
        Extension(
            "ipckit._core",
            sources=[
                "csrc/core.c",
                "csrc/endpoint.c",
                "csrc/queue.c",
                "csrc/ring.c",
                "csrc/stream.c",
            ],
            depends=["csrc/endpoint.h", "csrc/queue.h", "csrc/ring.h", "csrc/stream.h"],
            include_dirs=["csrc"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address,undefined"] if _flag("IPCKIT_SANITIZE") else [],
            libraries=["pthread", "rt"],  # rt: mq_send/mq_receive on glibc before 2.34
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
