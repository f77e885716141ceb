"""``dezky-infra recover``: put a stack back in order after a run was killed.

A killed run leaves Pulumi's lock (no expiry on self-managed backends) and pending operations
behind. Recovery first proves that every recorded holder is dead, then clears the lock and
refreshes with pending creates cleared, and says what it did at each step.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from automation.engine import PROJECT, Engine
from automation.lease import FileLease, Holder, StackBusyError
from automation.progress import Sink, StepLog, translate
from automation.records import ChangeSummary
from automation.runner import new_run_id
from automation.settings import Settings


@dataclass
class Recovery:
    stack: str
    actions: list[str] = field(default_factory=list)
    summary: ChangeSummary = field(default_factory=ChangeSummary)


def pulumi_locks(settings: Settings, stack: str) -> list[Path]:
    """Pulumi's lock files of a stack on a file:// backend (others are not readable here)."""
    url = urlparse(settings.effective_backend_url)
    if url.scheme != "file":
        return []
    directory = Path(url.path) / ".pulumi" / "locks" / "organization" / PROJECT / stack
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def _lock_holder(path: Path, stack: str) -> Holder:
    data = json.loads(path.read_text(encoding="utf-8"))
    pid, host, since = (
        int(data.get("pid", 0)),
        str(data.get("hostname", "?")),
        data.get("timestamp"),
    )
    # Pulumi's lock never expires: only a dead pid on this host proves it stale.
    return Holder(stack, "pulumi", "pulumi", pid, host, str(since), float("inf"))


def recover(
    settings: Settings, engine: Engine, stack: str, sink: Sink, force: bool = False
) -> Recovery:
    """Clear a dead run's locks and pending creates; StackBusyError if a holder is alive.

    A Pulumi lock taken on another host cannot be checked from here: it is refused unless
    ``force`` says a person has checked that its holder is gone.
    """
    report = Recovery(stack)
    lease = FileLease(settings.locks_dir, stack, new_run_id(), "recover", settings.lease_seconds)
    previous = lease.current()
    with lease:
        lease.acquire()  # raises StackBusyError while a live run holds the stack
        if previous is not None:
            report.actions.append(
                f"took over the lease of dead run {previous.run_id} "
                f"(pid {previous.pid} on {previous.host}, since {previous.since})"
            )
        locks = pulumi_locks(settings, stack)
        for path in locks:
            holder = _lock_holder(path, stack)
            elsewhere = holder.host != socket.gethostname()
            if (elsewhere and not force) or (not elsewhere and holder.alive(0.0)):
                raise StackBusyError(holder)
        handle = engine.stack(stack)
        if locks or urlparse(settings.effective_backend_url).scheme != "file":
            engine.cancel(handle)
            report.actions.append(f"cleared {len(locks) or 'the'} stale Pulumi lock(s)")
        log = StepLog()
        result = engine.refresh(handle, translate(stack, sink, log), clear_pending_creates=True)
        report.summary = ChangeSummary.from_engine(result.changes)
        report.actions.append(
            f"refreshed {sum(result.changes.values())} resources from the providers "
            f"({len(log.changing)} changed); pending creates cleared"
        )
    return report
