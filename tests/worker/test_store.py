"""The run queue on a real MongoDB wire server: enqueue, dedupe, claims, leases, TTL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from pymongo.database import Database

from automation.mongo import MAX_CLAIMS, RunStore, decode_cursor, encode_cursor, utcnow
from automation.records import Operation, RunRecord, RunState
from automation.runner import new_run_id, now


def queued(stack: str = "tenant-acme", op: Operation = Operation.UP, who: str = "u1") -> RunRecord:
    tenant = stack.removeprefix("tenant-")
    return RunRecord(id=new_run_id(), stack=stack, operation=op, state=RunState.QUEUED,
                     requested_by=who, created_at=now(), tenant=tenant)  # fmt: skip


def store(db: Database[dict[str, Any]], lease: float = 60) -> RunStore:
    s = RunStore(db, timedelta(seconds=lease))
    s.ensure_indexes()
    return s


def test_idempotency_key_returns_the_same_run(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    first, created = s.enqueue(queued(), "key-1")
    again, created_again = s.enqueue(queued(op=Operation.PREVIEW), "key-1")
    assert (created, created_again, again.id) == (True, False, first.id)


def test_a_still_queued_run_is_reused(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    first, _ = s.enqueue(queued())
    second, created = s.enqueue(queued(who="u2"))
    assert (created, second.id) == (False, first.id)
    other, created_other = s.enqueue(queued(op=Operation.PREVIEW))
    assert created_other and other.id != first.id


def test_claim_race_exactly_one_worker_wins(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    run, _ = s.enqueue(queued())
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def worker(name: str) -> None:
        barrier.wait()
        results.append(s.claim(name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [c for c in results if c is not None]
    assert len(winners) == 1 and winners[0].run.id == run.id
    assert s.get(run.id).state is RunState.RUNNING  # type: ignore[union-attr]


def test_one_run_per_stack_across_workers(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    s.enqueue(queued(op=Operation.UP))
    s.enqueue(queued(op=Operation.REFRESH))
    other, _ = s.enqueue(queued(stack="tenant-beta"))
    first = s.claim("w1")
    second = s.claim("w2")
    assert first is not None and second is not None
    assert second.run.id == other.id  # the second acme run waits for the first
    assert s.claim("w3") is None
    s.finish(first, first.run.model_copy(update={"state": RunState.SUCCEEDED}))
    third = s.claim("w3")
    assert third is not None and third.run.operation is Operation.REFRESH


def test_an_expired_lease_goes_back_to_the_queue_a_bounded_number_of_times(
    db: Database[dict[str, Any]],
) -> None:
    s = store(db, lease=0.05)
    run, _ = s.enqueue(queued())
    for attempt in range(1, MAX_CLAIMS + 1):
        claim = s.claim(f"w{attempt}")  # claim() re-queues what expired first
        assert claim is not None and claim.run.id == run.id, attempt
        # The worker dies: neither its run lease nor its stack lock is renewed any more.
        past = utcnow() - timedelta(seconds=1)
        db["automation_runs"].update_one({"_id": run.id}, {"$set": {"lease_expires": past}})
        db["automation_stack_locks"].update_one({"_id": run.stack}, {"$set": {"expires": past}})
    assert s.claim("w-last") is None
    final = s.get(run.id)
    assert final is not None and final.state is RunState.FAILED
    assert final.message == f"its worker stopped {MAX_CLAIMS} times"


def test_heartbeat_keeps_a_claim_and_notices_losing_it(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    s.enqueue(queued())
    claim = s.claim("w1")
    assert claim is not None and s.heartbeat(claim)
    db["automation_runs"].update_one({"_id": claim.run.id}, {"$set": {"worker": "someone-else"}})
    assert not s.heartbeat(claim)


def test_cancel_a_queued_run_at_once_and_ask_a_running_one(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    waiting, _ = s.enqueue(queued(stack="tenant-b"))
    cancelled = s.request_cancel(waiting.id)
    assert cancelled is not None and cancelled.state is RunState.CANCELLED
    s.enqueue(queued())
    claim = s.claim("w1")
    assert claim is not None and not s.cancel_requested(claim.run.id)
    assert s.request_cancel(claim.run.id).state is RunState.RUNNING  # type: ignore[union-attr]
    assert s.cancel_requested(claim.run.id)


def test_events_stream_in_order_and_expire_by_ttl(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    for seq in (1, 2, 3):
        s.append_event("r1", seq, {"kind": "step", "name": f"n{seq}"})
    assert [e["seq"] for e in s.events_after("r1", 1)] == [2, 3]
    ttl = db["automation_run_events"].index_information()["ttl"]
    assert ttl["expireAfterSeconds"] == 30 * 24 * 3600


def test_pagination_newest_first_with_a_cursor(db: Database[dict[str, Any]]) -> None:
    s = store(db)
    ids = [s.enqueue(queued(stack=f"tenant-t{i}"))[0].id for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = s.list(None, None, 2, decode_cursor(cursor) if cursor else None)
        seen += [r.id for r in page]
        if len(page) < 2:
            break
        cursor = encode_cursor(page[-1])
    assert sorted(seen) == sorted(ids) and len(seen) == 5  # every run once, none twice
    only_t1 = s.list(["t1"], None, 10, None)
    assert [r.stack for r in only_t1] == ["tenant-t1"]
    assert decode_cursor("garbage") is None


def test_a_worker_that_loses_the_race_never_frees_the_winners_stack_lock(
    db: Database[dict[str, Any]],
) -> None:
    s = store(db)
    run, _ = s.enqueue(queued())
    winner = s.claim("w1")
    assert winner is not None
    # w2 saw the run as queued a moment earlier and now tries to lock and unlock its stack.
    assert not s._lock_stack(run.stack, run.id, "w2", utcnow())
    s._unlock_stack(run.stack, run.id, "w2")
    assert db["automation_stack_locks"].find_one({"_id": run.stack})["worker"] == "w1"  # type: ignore[index]
