"""The CLI's run store: one JSON file per stack (last run, failures in a row) and a history.

A stack that failed ``MAX_FAILURES`` times in a row with the same spec is stalled until the
spec changes (as in the Pulumi Kubernetes Operator). The worker uses MongoDB instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from automation.records import RunRecord

MAX_FAILURES = 3


@dataclass(frozen=True)
class StackHealth:
    failures: int = 0
    spec_hash: str = ""

    def stalled(self, spec_hash: str) -> bool:
        return self.failures >= MAX_FAILURES and self.spec_hash == spec_hash


class RunStore(Protocol):
    """Where runs are recorded: the CLI's files, or MongoDB for the worker."""

    def health(self, stack: str) -> StackHealth: ...

    def record(self, run: RunRecord, spec_hash: str, failed: bool) -> None: ...


def next_health(before: StackHealth, spec_hash: str, failed: bool) -> StackHealth:
    """Failures in a row count per spec: a new spec starts from zero."""
    same_spec = before.spec_hash == spec_hash
    return StackHealth((before.failures if same_spec else 0) + 1 if failed else 0, spec_hash)


class FileRunStore:
    """Run records under ``.state/runs``: ``<stack>.json`` and ``history.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def health(self, stack: str) -> StackHealth:
        try:
            data = json.loads((self.directory / f"{stack}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return StackHealth()
        return StackHealth(int(data.get("failures", 0)), str(data.get("spec_hash", "")))

    def record(self, run: RunRecord, spec_hash: str, failed: bool) -> None:
        """Append the run to the history and update the stack's failure count."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "history.jsonl").open("a", encoding="utf-8") as history:
            history.write(run.model_dump_json() + "\n")
        health = next_health(self.health(run.stack), spec_hash, failed)
        state = {
            "failures": health.failures,
            "spec_hash": spec_hash,
            "last": run.model_dump(mode="json"),
        }
        path = self.directory / f"{run.stack}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        tmp.replace(path)

    def history(self, stack: str | None = None, limit: int = 20) -> list[RunRecord]:
        try:
            lines = (self.directory / "history.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        runs = [RunRecord.model_validate_json(line) for line in lines if line.strip()]
        return [r for r in runs if stack is None or r.stack == stack][-limit:]
