"""One run per stack: an expiring lease with a heartbeat, in front of Pulumi's own lock.

Pulumi's self-managed lock has no expiry (a killed run leaves it until ``pulumi cancel``), so we
never rely on it alone. Our lease names its holder (run, pid, host, since), expires unless
renewed, and is taken over when its holder is provably gone: expired, or a dead pid on this
host. The file form serves the CLI on one machine; the worker uses the run store's lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a stack's lease, and until when unless renewed."""

    stack: str
    run_id: str
    operation: str
    pid: int
    host: str
    since: str
    expires: float

    def alive(self, now: float) -> bool:
        """False when the holder is provably gone: lease expired or a dead pid on this host."""
        if now > self.expires:
            return False
        if self.host == socket.gethostname():
            return pid_alive(self.pid)
        return True

    def describe(self) -> str:
        return (
            f"stack {self.stack} is being updated by run {self.run_id} "
            f"({self.operation}, pid {self.pid} on {self.host}) since {self.since}"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StackBusyError(Exception):
    """Another run holds the stack; retrying later helps."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        super().__init__(holder.describe())


class FileLease:
    """A lease on one stack, kept in ``<locks>/<stack>.json``; use as a context manager."""

    def __init__(
        self,
        locks_dir: Path,
        stack: str,
        run_id: str,
        operation: str,
        seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = locks_dir / f"{stack}.json"
        self.stack, self.run_id, self.operation = stack, run_id, operation
        self.seconds = seconds
        self.clock = clock
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _holder(self) -> Holder:
        now = self.clock()
        since = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        return Holder(self.stack, self.run_id, self.operation, os.getpid(),
                      socket.gethostname(), since, now + self.seconds)  # fmt: skip

    def current(self) -> Holder | None:
        """The recorded holder, or None when the stack is free."""
        try:
            return Holder(**json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # A torn or foreign file: treat as expired so it can be taken over.
            return Holder(self.stack, "unknown", "unknown", 0, "unknown", "unknown", 0.0)

    def try_acquire(self) -> Holder | None:
        """Take the lease; return the live holder instead when someone else has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        mine.write_text(json.dumps(asdict(self._holder())), encoding="utf-8")
        try:
            while True:
                try:
                    os.link(mine, self.path)  # atomic, and the file never exists half-written
                    return None
                except FileExistsError:
                    pass
                with self._takeover_guard():
                    # Re-read under the guard: of two takers of one stale lease, only the first
                    # sets it aside; the second then sees the first's live lease.
                    holder = self.current()
                    if holder is not None and holder.alive(self.clock()):
                        return holder
                    if holder is not None:
                        with contextlib.suppress(FileNotFoundError):
                            os.replace(self.path, self.path.with_suffix(f".stale-{os.getpid()}"))
        finally:
            mine.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _takeover_guard(self) -> Iterator[None]:
        with (self.path.parent / f".{self.path.stem}.takeover").open("a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lease, waiting up to ``wait`` seconds; StackBusyError if still held."""
        deadline = self.clock() + wait
        while True:
            holder = self.try_acquire()
            if holder is None:
                self._start_heartbeat()
                return
            if self.clock() >= deadline:
                raise StackBusyError(holder)
            time.sleep(POLL_SECONDS)

    def renew(self) -> None:
        holder = self.current()
        if holder is None or holder.run_id != self.run_id:
            return  # taken over after we stalled: never overwrite the new holder
        tmp = self.path.with_suffix(".renew")
        tmp.write_text(json.dumps(asdict(self._holder())), encoding="utf-8")
        os.replace(tmp, self.path)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        holder = self.current()
        if holder is not None and holder.run_id == self.run_id:
            self.path.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.seconds / 3):
                with contextlib.suppress(OSError):  # a full disk now must not end the heartbeat
                    self.renew()

        self._heartbeat = threading.Thread(target=beat, name=f"lease-{self.stack}", daemon=True)
        self._heartbeat.start()

    def __enter__(self) -> FileLease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
