"""The only module that talks to MongoDB: the run queue, run events, tenant write-back.

Collections: ``automation_runs`` (one document per run, the queue), ``automation_run_events``
(progress, expired by a TTL index), ``automation_stack_locks`` (one run per stack across all
workers), and platform-api's ``tenants`` and ``users`` (read, and written back by slug).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from automation.records import Operation, Reason, RunRecord, RunState
from automation.runstore import StackHealth, next_health

EVENT_TTL = timedelta(days=30)
MAX_CLAIMS = 3  # a run whose worker died this many times fails instead of going back to the queue
ACTIVE = [RunState.QUEUED.value, RunState.RUNNING.value]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """A run a worker holds, until ``expires`` unless renewed."""

    run: RunRecord
    worker: str
    expires: datetime


class RunStore:
    """Runs, their events and the stack locks in MongoDB; safe across processes and machines."""

    def __init__(
        self, db: Database[dict[str, Any]], lease: timedelta = timedelta(seconds=60)
    ) -> None:
        self.db = db
        self.runs: Collection[dict[str, Any]] = db["automation_runs"]
        self.events: Collection[dict[str, Any]] = db["automation_run_events"]
        self.locks: Collection[dict[str, Any]] = db["automation_stack_locks"]
        self.health_docs: Collection[dict[str, Any]] = db["automation_stack_health"]
        self.tenants: Collection[dict[str, Any]] = db["tenants"]
        self.users: Collection[dict[str, Any]] = db["users"]
        self.lease = lease

    def ensure_indexes(self) -> None:
        self.runs.create_index([("state", 1), ("created_at", 1)], name="queue")
        self.runs.create_index([("stack", 1), ("operation", 1), ("state", 1)], name="dedupe")
        # What list() filters and sorts on (created_dt, then _id for the cursor).
        by_tenant = [("tenant", 1), ("created_dt", -1), ("_id", -1)]
        self.runs.create_index(by_tenant, name="by_tenant_dt")
        self.runs.create_index([("created_dt", -1), ("_id", -1)], name="recent_dt")
        self.runs.create_index(
            [("requested_by", 1), ("idempotency_key", 1)],
            name="idempotency",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        )
        self.events.create_index([("run_id", 1), ("seq", 1)], name="stream", unique=True)
        self.events.create_index(
            [("at", 1)], name="ttl", expireAfterSeconds=int(EVENT_TTL.total_seconds())
        )

    # -- the queue (API side) -------------------------------------------------------------

    def enqueue(self, run: RunRecord, idempotency_key: str | None = None) -> tuple[RunRecord, bool]:
        """Queue ``run``; returns (run, created). Reuses a retried or still-queued equal run."""
        if idempotency_key:
            found = self.runs.find_one(
                {"requested_by": run.requested_by, "idempotency_key": idempotency_key}
            )
            if found:
                return _record(found), False
        queued = self.runs.find_one(
            {"stack": run.stack, "operation": run.operation.value, "state": RunState.QUEUED.value}
        )
        if queued:
            return _record(queued), False
        doc = {**_doc(run), "idempotency_key": idempotency_key, "claims": 0}
        try:
            self.runs.insert_one(doc)
        except DuplicateKeyError:  # the same key, inserted concurrently
            found = self.runs.find_one(
                {"requested_by": run.requested_by, "idempotency_key": idempotency_key}
            )
            assert found is not None  # noqa: S101 (the unique index just said it exists)
            return _record(found), False
        return run, True

    def get(self, run_id: str) -> RunRecord | None:
        doc = self.runs.find_one({"_id": run_id})
        return _record(doc) if doc else None

    def list(
        self,
        tenants: list[str] | None,
        state: str | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[RunRecord]:
        """Newest first; ``tenants`` None means every run; ``before`` is the cursor."""
        query: dict[str, Any] = {}
        if tenants is not None:
            query["tenant"] = {"$in": tenants}
        if state:
            query["state"] = state
        if before is not None:
            at, run_id = before
            query["$or"] = [{"created_dt": {"$lt": at}}, {"created_dt": at, "_id": {"$lt": run_id}}]
        cursor = self.runs.find(query).sort([("created_dt", -1), ("_id", -1)]).limit(limit)
        return [_record(doc) for doc in cursor]

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Cancel a queued run at once; ask the worker of a running run to stop."""
        doc = self.runs.find_one_and_update(
            {"_id": run_id, "state": RunState.QUEUED.value},
            {
                "$set": {
                    "state": RunState.CANCELLED.value,
                    "reason": Reason.CANCELLED.value,
                    "message": "cancelled before it started",
                    "finished_at": _iso(),
                }
            },  # fmt: skip
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = self.runs.find_one_and_update(
                {"_id": run_id, "state": RunState.RUNNING.value},
                {"$set": {"cancel_requested": True}},
                return_document=ReturnDocument.AFTER,
            )
        return _record(doc) if doc else self.get(run_id)

    def cancel_requested(self, run_id: str) -> bool:
        doc = self.runs.find_one({"_id": run_id}, {"cancel_requested": 1})
        return bool(doc and doc.get("cancel_requested"))

    # -- claims (worker side) ---------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        """Take the oldest queued run whose stack no other run holds, atomically."""
        self.requeue_expired()
        now = utcnow()
        for doc in self.runs.find({"state": RunState.QUEUED.value}).sort("created_at", 1).limit(20):
            if not self._lock_stack(doc["stack"], doc["_id"], worker, now):
                continue
            claimed = self.runs.find_one_and_update(
                {"_id": doc["_id"], "state": RunState.QUEUED.value},
                {
                    "$set": {
                        "state": RunState.RUNNING.value,
                        "worker": worker,
                        "lease_expires": now + self.lease,
                        "started_at": _iso(now),
                    },
                    "$inc": {"claims": 1},
                },  # fmt: skip
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                return Claim(_record(claimed), worker, now + self.lease)
            self._unlock_stack(doc["stack"], doc["_id"], worker)
        return None

    def _lock_stack(self, stack: str, run_id: str, worker: str, now: datetime) -> bool:
        try:
            self.locks.find_one_and_update(
                # Only an expired lock, or our own, may be taken: never another worker's.
                {
                    "_id": stack,
                    "$or": [{"expires": {"$lt": now}}, {"run_id": run_id, "worker": worker}],
                },
                {"$set": {"run_id": run_id, "worker": worker, "expires": now + self.lease}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # held by a live run
        return True

    def _unlock_stack(self, stack: str, run_id: str, worker: str) -> None:
        self.locks.delete_one({"_id": stack, "run_id": run_id, "worker": worker})

    def heartbeat(self, claim: Claim) -> bool:
        """Renew the run's lease and its stack lock; False when the claim was lost."""
        expires = utcnow() + self.lease
        renewed = self.runs.update_one(
            {"_id": claim.run.id, "worker": claim.worker, "state": RunState.RUNNING.value},
            {"$set": {"lease_expires": expires}},
        )
        self.locks.update_one(
            {"_id": claim.run.stack, "run_id": claim.run.id}, {"$set": {"expires": expires}}
        )
        return renewed.modified_count == 1

    def requeue_expired(self) -> int:
        """Runs whose worker died go back to the queue, at most ``MAX_CLAIMS`` times."""
        now = utcnow()
        expired = {"state": RunState.RUNNING.value, "lease_expires": {"$lt": now}}
        self.runs.update_many(  # asked to stop: it stays stopped
            {**expired, "cancel_requested": True},
            {
                "$set": {
                    "state": RunState.CANCELLED.value,
                    "reason": Reason.CANCELLED.value,
                    "message": "cancelled; its worker stopped",
                    "finished_at": _iso(),
                }
            },  # fmt: skip
        )
        failed = self.runs.update_many(
            {**expired, "claims": {"$gte": MAX_CLAIMS}},
            {
                "$set": {
                    "state": RunState.FAILED.value,
                    "reason": Reason.INTERNAL.value,
                    "message": f"its worker stopped {MAX_CLAIMS} times",
                    "finished_at": _iso(),
                }
            },  # fmt: skip
        )
        requeued = self.runs.update_many(
            {**expired, "claims": {"$lt": MAX_CLAIMS}},
            {"$set": {"state": RunState.QUEUED.value}, "$unset": {"worker": ""}},
        )
        return failed.modified_count + requeued.modified_count

    def finish(self, claim: Claim, result: RunRecord) -> None:
        fields = _doc(result)
        for key in ("_id", "created_at", "created_dt", "requested_by", "git_commit"):
            fields.pop(key, None)
        # Only while we still hold it: a run re-queued after our lease expired is not ours.
        owned = {"_id": claim.run.id, "worker": claim.worker, "state": RunState.RUNNING.value}
        self.runs.update_one(owned, {"$set": fields, "$unset": {"lease_expires": ""}})
        self._unlock_stack(claim.run.stack, claim.run.id, claim.worker)

    # -- RunStore protocol for the runner: failures in a row per stack ------------------------

    def health(self, stack: str) -> StackHealth:
        doc = self.health_docs.find_one({"_id": stack}) or {}
        return StackHealth(int(doc.get("failures", 0)), str(doc.get("spec_hash", "")))

    def record(self, run: RunRecord, spec_hash: str, failed: bool) -> None:
        health = next_health(self.health(run.stack), spec_hash, failed)
        self.health_docs.update_one(
            {"_id": run.stack},
            {"$set": {"failures": health.failures, "spec_hash": spec_hash}},
            upsert=True,
        )

    # -- events ------------------------------------------------------------------------------

    def append_event(self, run_id: str, seq: int, event: Mapping[str, Any]) -> None:
        self.events.insert_one({"run_id": run_id, "seq": seq, "at": utcnow(), **event})

    def events_after(self, run_id: str, after: int) -> Iterator[dict[str, Any]]:
        query = {"run_id": run_id, "seq": {"$gt": after}}
        yield from self.events.find(query, {"_id": 0, "run_id": 0}).sort("seq", 1)

    # -- tenants (platform-api's documents) ------------------------------------------------

    def tenant_exists(self, slug: str) -> dict[str, Any] | None:
        return self.tenants.find_one({"slug": slug}, {"_id": 1, "slug": 1})

    def write_back(self, slug: str, fields: Mapping[str, Any]) -> None:
        self.tenants.update_one({"slug": slug}, {"$set": dict(fields)})

    def tenant_document(self, slug: str) -> dict[str, Any] | None:
        return self.tenants.find_one({"slug": slug})


def encode_cursor(run: RunRecord) -> str:
    """An opaque position after ``run`` in the newest-first listing."""
    return f"{run.created_at}|{run.id}"


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    created, _, run_id = cursor.partition("|")
    try:
        return datetime.fromisoformat(created), run_id
    except ValueError:
        return None


def _iso(at: datetime | None = None) -> str:
    return (at or utcnow()).isoformat(timespec="seconds")


def _doc(run: RunRecord) -> dict[str, Any]:
    doc = run.model_dump(mode="json")
    doc["_id"] = doc.pop("id")
    doc["created_dt"] = datetime.fromisoformat(run.created_at)
    return doc


def _record(doc: Mapping[str, Any]) -> RunRecord:
    fields = {k: v for k, v in doc.items() if k in RunRecord.model_fields}
    return RunRecord.model_validate({**fields, "id": doc["_id"]})


def connect(uri: str, database: str = "dezky") -> Database[dict[str, Any]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=3000, tz_aware=True
    )
    return client[database]


__all__ = ["ACTIVE", "Claim", "Operation", "RunStore", "connect"]
