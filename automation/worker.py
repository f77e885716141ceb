"""``dezky-infra worker``: claims queued runs from MongoDB and executes them.

A claim holds the run and its stack (one run per stack across every worker on every machine);
a heartbeat renews both, notices a cancel request, and gives the run up when the claim was
lost. A worker that dies leaves a lease that expires: the run goes back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict

from automation import signals, writeback
from automation.engine import Engine
from automation.errors import Failure, classify
from automation.mongo import Claim, RunStore
from automation.orchestrate import spec_for
from automation.plan import Workspace
from automation.progress import StackEvent
from automation.records import RunRecord, RunState
from automation.runner import Runner, RunRequest, now
from automation.settings import Settings
from tenants.problems import SpecError

log = logging.getLogger("dezky.worker")


def _failed(run: RunRecord, failure: Failure) -> RunRecord:
    update = {"state": RunState.FAILED, "reason": failure.reason,
              "message": failure.message, "finished_at": now()}  # fmt: skip
    return run.model_copy(update=update)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Claims and executes runs until ``stop`` is set."""

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        engine: Callable[[], Engine],
        stop: threading.Event,
        name: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store, self.settings, self.engine = store, settings, engine
        self.stop, self.poll = stop, poll_seconds
        self.name = name or worker_name()

    def run_forever(self) -> None:
        while not self.stop.is_set():
            if not self.run_once():
                self.stop.wait(self.poll)

    def run_once(self) -> RunRecord | None:
        """Claim and execute one run; None when the queue had nothing this worker may take."""
        claim = self.store.claim(self.name)
        if claim is None:
            return None
        cancel = threading.Event()
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(claim, cancel, done), daemon=True)
        beat.start()
        try:
            result = self._execute(claim, cancel)
        except Exception as exc:  # the run must end as a record, and the worker must go on
            log.exception("run %s failed in the worker", claim.run.id)
            result = _failed(claim.run, classify(exc, True))
        finally:
            done.set()
            beat.join()
        self.store.finish(claim, result)
        return result

    def _execute(self, claim: Claim, cancel: threading.Event) -> RunRecord:
        run = claim.run
        sequence = iter(range(1, 1_000_000_000))

        def sink(event: StackEvent) -> None:
            self.store.append_event(run.id, next(sequence), asdict(event))

        ws = Workspace(self.settings.repo, self.settings.environment)
        try:
            spec = spec_for(ws, run.stack)
        except SpecError as exc:
            return _failed(run, classify(exc, True))
        # The claim's stack lock keeps workers apart; the runner's file lease also keeps a CLI
        # run on this machine (same .state/) and this run apart.
        runner = Runner(self.engine(), self.settings, self.store, sink, cancel,
                        git_commit=run.git_commit)  # fmt: skip
        request = RunRequest(run.stack, run.operation, run.requested_by, id=run.id)
        result = runner.execute(request, spec)
        if result.tenant is not None:
            fields = writeback.fields_for(result, spec.tenant)
            try:
                if fields:
                    self.store.write_back(result.tenant, fields)
            except Exception:  # the run's own record still lands; the next run writes back again
                log.exception("write-back of run %s to tenant %s failed", run.id, result.tenant)
        return result

    def _heartbeat(self, claim: Claim, cancel: threading.Event, done: threading.Event) -> None:
        interval = self.store.lease.total_seconds() / 3
        while not done.wait(interval):
            try:
                lost = not self.store.heartbeat(claim)
                stop = lost or self.store.cancel_requested(claim.run.id)
            except Exception:  # MongoDB unreachable: stop before the lease can run out
                log.warning("heartbeat of run %s failed; stopping it", claim.run.id, exc_info=True)
                stop = True
            if stop and not cancel.is_set():
                cancel.set()
                for pid in signals.child_pids():  # the engine stops after the steps in flight
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGINT)
