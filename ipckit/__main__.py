"""``python -m ipckit``: the same as the ``ipckit`` command."""

from __future__ import annotations

import sys

from ipckit.cli import main

sys.exit(main())
