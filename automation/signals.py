"""SIGINT/SIGTERM during a run: stop cleanly, as the Pulumi CLI does on its first signal.

The first signal sets the cancel flag (no new stack starts) and passes SIGINT on to the engine
processes we started, which finish the steps in flight and exit; a second signal passes on
SIGTERM. Never SIGKILL: that orphans resources and leaves Pulumi's lock behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType


def child_pids() -> list[int]:
    """Direct children of this process (Linux /proc), i.e. the engine CLIs we started."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may contain spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


def _terminal_sent_to_group(signum: int) -> bool:
    if signum != signal.SIGINT:
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def install(cancel: threading.Event) -> None:
    """Route SIGINT and SIGTERM to a graceful cancel of every running stack."""

    def handle(signum: int, frame: FrameType | None) -> None:
        forward = signal.SIGTERM if cancel.is_set() else signal.SIGINT
        cancel.set()
        if _terminal_sent_to_group(signum):
            return  # Ctrl-C reached the engine processes already; a second one would kill them
        for pid in child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, forward)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
