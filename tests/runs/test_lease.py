"""The stack lease: one holder at a time, waiting, expiry, and takeover from the dead."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from automation.lease import FileLease, StackBusyError


def lease(tmp_path: Path, run_id: str, seconds: float = 30.0) -> FileLease:
    return FileLease(tmp_path, "tenant-acme", run_id, "up", seconds)


def test_second_run_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with lease(tmp_path, "run-1") as first:
        first.acquire()
        with pytest.raises(StackBusyError) as busy:
            lease(tmp_path, "run-2").acquire()
    message = str(busy.value)
    assert message.startswith("stack tenant-acme is being updated by run run-1 (up, pid ")
    assert f"on {socket.gethostname()}) since 20" in message
    assert not (tmp_path / "tenant-acme.json").exists()  # released on exit


def test_waiting_run_gets_the_stack_when_the_first_finishes(tmp_path: Path) -> None:
    first = lease(tmp_path, "run-1")
    first.acquire()
    threading.Timer(0.3, first.release).start()
    started = time.monotonic()
    with lease(tmp_path, "run-2") as second:
        second.acquire(wait=5)
        assert second.current() is not None and second.current().run_id == "run-2"  # type: ignore[union-attr]
    assert 0.25 < time.monotonic() - started < 3


def test_waiting_times_out(tmp_path: Path) -> None:
    with lease(tmp_path, "run-1") as first:
        first.acquire()
        started = time.monotonic()
        with pytest.raises(StackBusyError):
            lease(tmp_path, "run-2").acquire(wait=0.6)
        assert 0.5 < time.monotonic() - started < 2


def test_lease_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    holder = {"stack": "tenant-acme", "run_id": "crashed", "operation": "up",
              "pid": int(dead.stdout), "host": socket.gethostname(),
              "since": "2026-11-23T03:00:00+00:00", "expires": time.time() + 3600}  # fmt: skip
    (tmp_path / "tenant-acme.json").write_text(json.dumps(holder))
    with lease(tmp_path, "run-2") as second:
        second.acquire()
        assert second.current().run_id == "run-2"  # type: ignore[union-attr]


def test_expired_lease_on_another_host_is_taken_over(tmp_path: Path) -> None:
    holder = {"stack": "tenant-acme", "run_id": "elsewhere", "operation": "up", "pid": 1,
              "host": "ci-runner-7", "since": "x", "expires": time.time() - 1}  # fmt: skip
    (tmp_path / "tenant-acme.json").write_text(json.dumps(holder))
    with lease(tmp_path, "run-2") as second:
        second.acquire()


def test_live_lease_on_another_host_is_respected(tmp_path: Path) -> None:
    holder = {"stack": "tenant-acme", "run_id": "elsewhere", "operation": "up", "pid": 1,
              "host": "ci-runner-7", "since": "x", "expires": time.time() + 60}  # fmt: skip
    (tmp_path / "tenant-acme.json").write_text(json.dumps(holder))
    with pytest.raises(StackBusyError, match="run elsewhere"):
        lease(tmp_path, "run-2").acquire()


def test_heartbeat_keeps_a_short_lease_alive(tmp_path: Path) -> None:
    with lease(tmp_path, "run-1", seconds=0.6) as first:
        first.acquire()
        time.sleep(1.2)  # two lease lengths: only renewals keep it
        with pytest.raises(StackBusyError):
            lease(tmp_path, "run-2", seconds=0.6).acquire()


def test_a_taken_over_lease_is_not_overwritten_or_removed_by_the_old_holder(
    tmp_path: Path,
) -> None:
    first = lease(tmp_path, "run-1")
    first.acquire()
    first._stop.set()  # a holder that stalled: no more heartbeats
    holder = json.loads((tmp_path / "tenant-acme.json").read_text())
    holder["expires"] = time.time() - 1
    (tmp_path / "tenant-acme.json").write_text(json.dumps(holder))
    with lease(tmp_path, "run-2") as second:
        second.acquire()
        first.renew()
        first.release()
        assert second.current().run_id == "run-2"  # type: ignore[union-attr]


def test_torn_lease_file_is_treated_as_stale(tmp_path: Path) -> None:
    (tmp_path / "tenant-acme.json").write_text('{"stack": "tenant-')
    with lease(tmp_path, "run-2") as second:
        second.acquire()
    # Set aside for a post-mortem, not deleted.
    assert f"tenant-acme.stale-{os.getpid()}" in os.listdir(tmp_path)


def test_many_takers_of_one_stale_lease_end_with_exactly_one_holder(tmp_path: Path) -> None:
    holder = {"stack": "tenant-acme", "run_id": "dead", "operation": "up", "pid": 1,
              "host": "elsewhere", "since": "x", "expires": time.time() - 1}  # fmt: skip
    (tmp_path / "tenant-acme.json").write_text(json.dumps(holder))
    leases = [lease(tmp_path, f"run-{i}") for i in range(8)]
    barrier = threading.Barrier(len(leases))
    won: list[str] = []

    def take(candidate: FileLease) -> None:
        barrier.wait()
        if candidate.try_acquire() is None:
            won.append(candidate.run_id)

    threads = [threading.Thread(target=take, args=(c,)) for c in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert leases[0].current().run_id == won[0]  # type: ignore[union-attr]
