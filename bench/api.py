"""Benchmark the run API and the run queue against a local MongoDB wire server (SecantusDB).

Run it from the repository root (about 40 seconds on the 2-core development machine):

    .venv/bin/python bench/api.py [--rate 100] [--seconds 10] [--get-seconds 5]
                                  [--get-threads 4] [--runs 400] [--workers 4] [--profile 25]

Three processes: SecantusDB (pure Python) in one, the API under uvicorn in another (``spawn``),
and this one, which serves the issuer's discovery document and JWKS on loopback
(``tests.api.conftest.OidcServer``, an RSA key made here) and generates the load, so no two of
them share a GIL.

1. ``post_runs``: ``POST /runs`` offered open-loop at ``--rate`` requests/s for ``--seconds``;
   request i is due at start + i/rate and its latency counts from then (no coordinated
   omission), after 50 unmeasured warm-up requests on other tenants (one shared client made
   beforehand). Tenants (250) and operations (4) vary, so most requests create a run; the caller
   is a platform admin and ``runs_per_minute`` is far above the offered rate. Target: p99 at
   most 50 ms at 100 requests/s.
2. ``get_run``: ``GET /runs/{id}`` (ids from step 1) from ``--get-threads`` closed-loop client
   threads for ``--get-seconds``. Target: at least 500 requests/s.
3. ``claims``: ``--runs`` queued runs on distinct stacks in a fresh database, drained by
   ``--workers`` threads calling ``RunStore.claim()`` then ``RunStore.finish()`` directly.

One JSON document goes to stdout; progress to stderr. ``--profile N`` samples the stacks of the
API and database processes (every thread, every 2 ms) and adds the top N functions by inclusive
share of samples to the document (sampling slows both down: figures of a profiled run are not
the figures to quote).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.api is not an installed package
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from automation.mongo import RunStore, connect  # noqa: E402
from automation.records import Operation, RunRecord, RunState  # noqa: E402

TENANTS = 250
WARM_TENANTS = 50
OPERATIONS = ("preview", "up", "refresh", "drift")
ADMIN = "bench-admin"
TARGET_POST_P99_MS = 50.0
TARGET_POST_RATE = 100.0
TARGET_GET_RATE = 500.0


def log(message: str) -> None:
    print(f"[bench/api] {message}", file=sys.stderr, flush=True)


# -- a sampling profiler (cProfile sees one thread; the API's handlers run in a pool) ---------


# Functions where a sampled thread is blocked (sockets, waits), not running Python.
IDLE = (
    "wire.py:_recv_exactly",
    "server.py:_readable",
    "socket.py:accept",
    "socket.py:readinto",
    "selectors.py:select",
    "threading.py:wait",
    "synchronize.py:wait",
    "queues.py:get",
    "_base.py:select",
    "base_events.py:_run_once",
    "network_layer.py:recv_into",
    "periodic_executor.py:_run",
)


class Sampler:
    """Counts, every ``interval`` seconds, each function on the stack of every other thread
    that is not blocked (see IDLE): own = the top frame, inclusive = anywhere on the stack."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.samples = 0
        self.inclusive: Counter[str] = Counter()
        self.own: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                code = frame.f_code
                name = f"{_short(code.co_filename)}:{code.co_name}"
                if name.endswith(IDLE):
                    continue  # a thread blocked in I/O or a wait uses no CPU
                self.own[name] += 1
                seen: set[str] = set()
                current: Any = frame
                while current is not None:
                    code = current.f_code
                    name = f"{_short(code.co_filename)}:{code.co_name}"
                    if name not in seen:
                        self.inclusive[name] += 1
                        seen.add(name)
                    current = current.f_back
                self.samples += 1

    def stop(self, top: int) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        return {
            "busy_samples": self.samples,
            "top_own": [[k, v] for k, v in self.own.most_common(top)],
            "top_inclusive": [[k, v] for k, v in self.inclusive.most_common(top)],
        }


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for marker in ("site-packages", "main"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    return Path(filename).name


# -- child processes ---------------------------------------------------------------------------


def _mongo_process(storage: str, ready: Any, stop: Any, profile: int, out: str) -> None:
    from secantus import SecantusDBServer

    sampler = Sampler() if profile else None
    with SecantusDBServer(storage_path=storage) as server:
        ready.put(server.uri)
        if sampler:
            sampler.start()
        stop.wait(600)  # bounded: the parent sets it long before
        if sampler:
            Path(out).write_text(json.dumps(sampler.stop(profile)))


def _api_process(
    mongo_uri: str, database: str, issuer: str, ready: Any, stop: Any, profile: int, out: str
) -> None:
    import logging

    import uvicorn

    from automation.api.app import ApiSettings, create_app
    from automation.api.auth import AuthSettings, TokenVerifier

    logging.basicConfig(level=logging.WARNING)
    store = RunStore(connect(mongo_uri, database), timedelta(seconds=60))
    verifier = TokenVerifier(AuthSettings(issuers=(issuer,)))
    app = create_app(store, verifier, ApiSettings(runs_per_minute=1_000_000))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    sampler = Sampler() if profile else None

    def announce() -> None:
        while not server.started:
            time.sleep(0.01)
        ready.put(server.servers[0].sockets[0].getsockname()[1])
        if sampler:
            sampler.start()

    def watch() -> None:
        stop.wait(600)  # bounded: the parent sets it long before
        server.should_exit = True

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=watch, daemon=True).start()
    server.run()
    if sampler:
        Path(out).write_text(json.dumps(sampler.stop(profile)))


def _stop(process: mp.process.BaseProcess, name: str, event: Any) -> None:
    """Ask the child to stop (``event``), then SIGTERM, then SIGKILL, to its pid only."""
    if process.pid is None:
        return  # never started
    event.set()
    process.join(20)
    if process.is_alive():
        process.terminate()  # SIGTERM to this child's pid only
    process.join(10)
    if process.is_alive():
        log(f"{name} (pid {process.pid}) ignored SIGTERM; killing it")
        process.kill()
        process.join(5)


# -- measurements --------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)}


def bench_post(
    base: str, token: str, rate: float, seconds: float
) -> tuple[dict[str, Any], list[str]]:
    headers = {"Authorization": f"Bearer {token}"}
    # One client made up front: making one loads the CA bundle (~40 ms of this process's GIL).
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    client = httpx.Client(base_url=base, timeout=10, headers=headers, limits=limits)
    with ThreadPoolExecutor(max_workers=8) as warm:  # code paths, pools (not measured)
        bodies = [{"tenant": f"w{i:03d}", "operation": "up"} for i in range(WARM_TENANTS)]
        list(warm.map(lambda body: client.post("/runs", json=body).raise_for_status(), bodies))
    rng = random.Random(5)  # noqa: S311 (a load mix, not a secret)
    total = int(rate * seconds)
    bodies = [
        {"tenant": f"t{rng.randrange(TENANTS):03d}", "operation": rng.choice(OPERATIONS)}
        for _ in range(total)
    ]
    results: list[tuple[float, int, str | None, float]] = []  # latency, status, run id, due
    lock = threading.Lock()

    def send(due: float, body: dict[str, str]) -> None:
        try:
            answer = client.post("/runs", json=body)
            status, run_id = answer.status_code, answer.json().get("id")
        except httpx.HTTPError as error:
            status, run_id = 0, type(error).__name__
        with lock:
            results.append((time.perf_counter() - due, status, run_id, due - start))

    pool = ThreadPoolExecutor(max_workers=32)
    start = time.perf_counter() + 0.05
    for i, body in enumerate(bodies):  # open loop: request i is due at start + i / rate
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pool.submit(send, due, body)
    pool.shutdown(wait=True)  # bounded: each request times out after 10 s
    client.close()
    wall = time.perf_counter() - start
    ok = [r for r in results if r[1] == 202]
    ids = [str(r[2]) for r in ok]
    figures = {
        "offered_rate": rate,
        "seconds": seconds,
        "requests": total,
        "status": dict(Counter(str(r[1]) for r in results)),
        "runs_created": len(set(ids)),
        "deduplicated": len(ids) - len(set(ids)),
        "achieved_rate": round(len(ok) / wall, 1),
        **percentiles([r[0] * 1000 for r in ok]),
        # p99 of the requests due in each second: growth means the server falls behind.
        "p99_ms_by_second": [
            percentiles([r[0] * 1000 for r in ok if int(r[3]) == second])["p99_ms"]
            for second in range(int(seconds))
        ],
    }
    return figures, sorted(set(ids))


def bench_get(
    base: str, token: str, ids: list[str], threads: int, seconds: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[list[float]] = [[] for _ in range(threads)]
    statuses: list[Counter[int]] = [Counter() for _ in range(threads)]
    start = time.perf_counter()
    deadline = start + seconds

    def loop(index: int) -> None:
        with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
            i = index
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                status = client.get(f"/runs/{ids[i % len(ids)]}").status_code
                latencies[index].append((time.perf_counter() - began) * 1000)
                statuses[index][status] += 1
                i += threads

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    wall = time.perf_counter() - start
    status = sum(statuses, Counter())
    return {
        "threads": threads,
        "seconds": round(wall, 2),
        "requests": sum(status.values()),
        "status": {str(k): v for k, v in status.items()},
        "rate": round(status[200] / wall, 1),
        **percentiles([v for chunk in latencies for v in chunk]),
    }


def bench_claims(mongo_uri: str, runs: int, workers: int) -> dict[str, Any]:
    database = "bench_claims"
    setup = RunStore(connect(mongo_uri, database))
    setup.ensure_indexes()
    base = datetime.now(UTC)
    for i in range(runs):
        created = (base + timedelta(milliseconds=i)).isoformat()
        setup.enqueue(
            RunRecord(
                id=f"r{i:05d}",
                stack=f"tenant-s{i:04d}",
                operation=Operation.UP,
                state=RunState.QUEUED,
                requested_by=ADMIN,
                created_at=created,
                tenant=f"s{i:04d}",
            )
        )
    done: list[list[float]] = [[] for _ in range(workers)]
    empty = [0] * workers
    deadline = time.perf_counter() + 120

    def work(index: int) -> None:
        store = RunStore(connect(mongo_uri, database))  # one client each, like a worker process
        name = f"bench-worker-{index}"
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            claim = store.claim(name)
            if claim is None:
                empty[index] += 1
                if store.runs.count_documents({"state": RunState.QUEUED.value}) == 0:
                    break
                continue
            finished = claim.run.model_copy(
                update={"state": RunState.SUCCEEDED, "finished_at": datetime.now(UTC).isoformat()}
            )
            store.finish(claim, finished)
            done[index].append((time.perf_counter() - began) * 1000)
        store.db.client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    wall = time.perf_counter() - start
    claimed = sum(len(d) for d in done)
    succeeded = setup.runs.count_documents({"state": RunState.SUCCEEDED.value})
    setup.db.client.drop_database(database)
    setup.db.client.close()
    return {
        "workers": workers,
        "queued": runs,
        "claimed": claimed,
        "succeeded_in_db": succeeded,
        "empty_claims": sum(empty),
        "seconds": round(wall, 2),
        "claims_per_second": round(claimed / wall, 1),
        "claim_plus_finish": percentiles([v for d in done for v in d]),
    }


def seed(mongo_uri: str, database: str) -> None:
    db = connect(mongo_uri, database)
    RunStore(db).ensure_indexes()
    # platform-api's collections; it keeps these lookups indexed.
    db["tenants"].create_index("slug", unique=True)
    db["users"].create_index("authentikSubjectId")
    db["tenants"].insert_many(
        [{"slug": f"t{i:03d}", "provisioningStatus": {}} for i in range(TENANTS)]
        + [{"slug": f"w{i:03d}", "provisioningStatus": {}} for i in range(WARM_TENANTS)]
    )
    db["users"].insert_one({"authentikSubjectId": ADMIN, "platformAdmin": True, "tenantIds": []})
    db.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=TARGET_POST_RATE)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--get-seconds", type=float, default=5.0)
    parser.add_argument("--get-threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()

    from tests.api.conftest import AUDIENCE, FakeClock, OidcServer

    ctx = mp.get_context("spawn")
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-"))
    oidc = OidcServer(FakeClock())
    issuer = oidc.issuer(AUDIENCE)  # an RS256 (and an ES256) key, published in its JWKS
    token = issuer.token(sub=ADMIN, exp=int(time.time()) + 3600)
    stop_mongo, stop_api = ctx.Event(), ctx.Event()
    ready: Any = ctx.Queue()
    mongo = ctx.Process(
        target=_mongo_process,
        args=(str(scratch / "db"), ready, stop_mongo, args.profile, str(scratch / "db.prof")),
        name="secantus",
    )
    api: mp.process.BaseProcess | None = None
    report: dict[str, Any] = {}
    try:
        mongo.start()
        mongo_uri = ready.get(timeout=60)
        log(f"SecantusDB pid {mongo.pid} at {mongo_uri}")
        seed(mongo_uri, "bench_api")
        api = ctx.Process(
            target=_api_process,
            args=(mongo_uri, "bench_api", issuer.url, ready, stop_api, args.profile,
                  str(scratch / "api.prof")),
            name="api",
        )  # fmt: skip
        api.start()
        port = ready.get(timeout=60)
        base = f"http://127.0.0.1:{port}"
        log(f"API pid {api.pid} at {base}")
        with httpx.Client(base_url=base, timeout=10) as client:  # warm-up: JWKS fetch, pools
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(20):
                client.get("/runs?limit=1", headers=auth).raise_for_status()

        log(f"POST /runs at {args.rate}/s for {args.seconds} s")
        post, ids = bench_post(base, token, args.rate, args.seconds)
        log(f"GET /runs/{{id}} with {args.get_threads} threads for {args.get_seconds} s")
        cpu = {name: _cpu_seconds(p.pid) for name, p in (("api", api), ("db", mongo))}
        get = bench_get(base, token, ids, args.get_threads, args.get_seconds)
        # CPU per request barely depends on what else the machine runs: the figure to compare.
        for name, process in (("api", api), ("db", mongo)):
            used = _cpu_seconds(process.pid) - cpu[name]
            get[f"{name}_cpu_ms_per_request"] = round(1000 * used / max(1, get["requests"]), 3)
        _stop(api, "API", stop_api)
        log(f"claims: {args.runs} runs, {args.workers} workers")
        claims = bench_claims(mongo_uri, args.runs, args.workers)
        _stop(mongo, "SecantusDB", stop_mongo)

        met = {
            "post_p99_ms_le_50": post["p99_ms"] is not None and post["p99_ms"] <= 50,
            "post_rate_ge_100": post["achieved_rate"] >= 0.98 * TARGET_POST_RATE,
            "get_rate_ge_500": get["rate"] >= TARGET_GET_RATE,
        }
        report = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "processes": "SecantusDB, API (uvicorn, 1 worker), load generator",
            },
            "post_runs": post,
            "get_run": get,
            "claims": claims,
            "targets": {
                "post_runs_p99_ms": TARGET_POST_P99_MS,
                "post_runs_rate": TARGET_POST_RATE,
                "get_run_rate": TARGET_GET_RATE,
            },
            "targets_detail": met,
            "targets_met": all(met.values()),
        }
        if args.profile:
            for name in ("api", "db"):
                path = scratch / f"{name}.prof"
                if path.exists():
                    report.setdefault("profile", {})[name] = json.loads(path.read_text())
    finally:
        if api is not None:
            _stop(api, "API", stop_api)
        _stop(mongo, "SecantusDB", stop_mongo)
        oidc.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
