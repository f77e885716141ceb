"""``dezky-infra serve``: the HTTP API the operator portal uses to trigger and watch runs.

It enqueues and reads records only; the worker runs the engine (this package never imports
pulumi: import-linter checks it). Every endpoint but the health checks needs an Authentik
access token; what a caller may do comes from its ``users`` document in MongoDB.
"""

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from automation.api import auth
from automation.api.schemas import RunCreate, RunOut, RunPage, TenantStatus
from automation.mongo import RunStore, decode_cursor, encode_cursor
from automation.records import Operation, RunRecord, RunState
from tenants.model import SLUG_PATTERN

log = logging.getLogger("dezky.api")
FINISHED = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.STALLED}


@dataclass(frozen=True)
class ApiSettings:
    """Limits of the API; built at the entry point."""

    runs_per_minute: int = 30
    event_poll_seconds: float = 0.5
    # How long a caller's rights (its users document) are reused before being read again.
    principal_cache_seconds: float = 10.0
    git_commit: str | None = None


class RateLimiter:
    """A token bucket per user: ``per_minute`` triggers, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def retry_after(self, user: str) -> float:
        """0 when allowed (and counted); otherwise seconds until the next token."""
        with self.lock:
            now = self.clock()
            tokens, last = self.buckets.get(user, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self.buckets[user] = (tokens - 1, now)
                return 0.0
            self.buckets[user] = (tokens, now)
            return (1 - tokens) / self.rate


class PrincipalCache:
    """Callers' rights from MongoDB, reused for a few seconds: one read less per request."""

    def __init__(
        self, store: RunStore, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.seconds, self.clock = store, seconds, clock
        self.entries: dict[str, tuple[float, auth.Principal | None]] = {}
        self.lock = threading.Lock()

    def peek(self, subject: str) -> auth.Principal | None:
        """A fresh cached principal, without touching MongoDB (None: not cached or stale)."""
        with self.lock:
            cached = self.entries.get(subject)
        return cached[1] if cached is not None and cached[0] > self.clock() else None

    def get(self, subject: str) -> auth.Principal | None:
        now = self.clock()
        with self.lock:
            cached = self.entries.get(subject)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = auth.load_principal(self.store.users, subject)
        with self.lock:
            if len(self.entries) > 10_000:  # bounded: unknown subjects must not grow it forever
                self.entries.clear()
            self.entries[subject] = (now + self.seconds, found)
        return found


def create_app(store: RunStore, verifier: auth.TokenVerifier, settings: ApiSettings) -> FastAPI:
    app = FastAPI(title="dezky-infra run API", version="1", openapi_url="/openapi.json")
    limiter = RateLimiter(settings.runs_per_minute)
    principals = PrincipalCache(store, settings.principal_cache_seconds)

    def authenticate(authorization: str | None) -> auth.Principal:
        try:
            claims = verifier.verify(auth.bearer_token(authorization))
        except auth.AuthError as exc:
            log.info("rejected token: %s", exc.reason)
            raise HTTPException(401, "invalid or missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"}) from None  # fmt: skip
        found = principals.get(claims.subject)
        if found is None:
            raise HTTPException(403, "no operator account for this token")
        return found

    async def principal(authorization: Annotated[str | None, Header()] = None) -> auth.Principal:
        # A token verified moments ago by a caller whose rights are cached needs no I/O: answer
        # on the event loop and save a thread-pool round trip on every poll.
        try:
            claims = verifier.already_verified(auth.bearer_token(authorization))
        except auth.AuthError:
            claims = None
        known = principals.peek(claims.subject) if claims is not None else None
        if known is not None:
            return known
        return await run_in_threadpool(authenticate, authorization)

    Caller = Annotated[auth.Principal, Depends(principal)]

    def tenant_id(slug: str) -> str:
        doc = store.tenant_exists(slug)
        if doc is None:
            raise HTTPException(404, f"unknown tenant '{slug}'")
        return str(doc["_id"])

    def readable(caller: auth.Principal, run: RunRecord | None) -> RunRecord:
        if run is None:
            raise HTTPException(404, "unknown run")
        if caller.platform_admin:
            return run
        doc = store.tenant_exists(run.tenant) if run.tenant else None
        if doc is None or not caller.can_read(str(doc["_id"])):
            raise HTTPException(404, "unknown run")  # no hint that it exists
        return run

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", incident, request.method, request.url.path)
        return JSONResponse({"detail": "internal error", "incident": incident}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        try:
            store.db.command("ping")
        except Exception:  # any failure means not ready; the reason goes to the log only
            log.warning("readyz: MongoDB unreachable", exc_info=True)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.post("/runs", status_code=202, response_model=RunOut, tags=["runs"])
    def create_run(
        body: RunCreate,
        caller: Caller,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        operation = Operation(body.operation)
        if body.tenant is not None or body.stack_name.startswith("tenant-"):
            slug = body.tenant or body.stack_name.removeprefix("tenant-")
            if not caller.can_trigger(tenant_id(slug), operation.value):
                raise HTTPException(403, f"not allowed to {operation.value} tenant '{slug}'")
        elif not caller.platform_admin:
            raise HTTPException(403, "only platform admins may run the platform stack")
        wait = limiter.retry_after(caller.subject)
        if wait:
            raise HTTPException(429, "too many runs requested; slow down",
                                headers={"Retry-After": str(max(1, round(wait)))})  # fmt: skip
        slug_of = body.stack_name.removeprefix("tenant-") if body.stack_name != "platform" else None
        record = RunRecord(
            id=uuid.uuid4().hex[:12],
            stack=body.stack_name,
            operation=operation,
            state=RunState.QUEUED,
            requested_by=caller.subject,
            created_at=_now(),
            tenant=slug_of,
            git_commit=settings.git_commit,
        )
        run, _ = store.enqueue(record, idempotency_key)
        return JSONResponse(RunOut.of(run).model_dump(mode="json"), status_code=202,
                            headers={"Location": f"/runs/{run.id}"})  # fmt: skip

    @app.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
    def get_run(run_id: str, caller: Caller) -> Response:
        # The portal polls this: serialize once (a returned model would be validated again).
        run = RunOut.of(readable(caller, store.get(run_id)))
        return Response(run.model_dump_json(), media_type="application/json")

    @app.get("/runs", response_model=RunPage, tags=["runs"])
    def list_runs(
        caller: Caller,
        tenant: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
        state: RunState | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> RunPage:
        tenants = _visible_tenants(store, caller, tenant)
        before = decode_cursor(cursor) if cursor else None
        if cursor and before is None:
            raise HTTPException(422, "invalid cursor")
        runs = store.list(tenants, state.value if state else None, limit, before)
        next_cursor = encode_cursor(runs[-1]) if len(runs) == limit else None
        return RunPage(runs=[RunOut.of(r) for r in runs], next_cursor=next_cursor)

    @app.post("/runs/{run_id}/cancel", response_model=RunOut, tags=["runs"])
    def cancel_run(run_id: str, caller: Caller) -> RunOut:
        run = readable(caller, store.get(run_id))
        if not caller.platform_admin:  # an admin may cancel anything: no tenant read
            doc = store.tenant_exists(run.tenant) if run.tenant else None
            if doc is None or not caller.can_trigger(str(doc["_id"]), run.operation.value):
                raise HTTPException(403, "not allowed to cancel this run")
        cancelled = store.request_cancel(run_id)
        if cancelled is None:
            raise HTTPException(404, "unknown run")
        return RunOut.of(cancelled)

    @app.get("/runs/{run_id}/events", tags=["runs"],
             responses={200: {"content": {"text/event-stream": {}}}})  # fmt: skip
    async def run_events(
        run_id: str,
        caller: Caller,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        readable(caller, store.get(run_id))
        valid = last_event_id is not None and re.fullmatch(r"[0-9]{1,12}", last_event_id)
        after = int(last_event_id) if valid and last_event_id else 0
        stream = _event_stream(store, run_id, after, settings.event_poll_seconds)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.get("/tenants/{slug}/status", response_model=TenantStatus, tags=["tenants"])
    def tenant_status(slug: str, caller: Caller) -> TenantStatus:
        doc = store.tenant_document(slug)
        if doc is None or not (caller.platform_admin or caller.can_read(str(doc["_id"]))):
            raise HTTPException(404, f"unknown tenant '{slug}'")
        runs = store.list([slug], None, 10, None)
        return TenantStatus(
            slug=slug,
            provisioning_status=dict(doc.get("provisioningStatus") or {}),
            provisioning_errors=list(doc.get("provisioningErrors") or []),
            drift=doc.get("automationDrift"),
            recent_runs=[RunOut.of(r) for r in runs],
        )

    return app


def _visible_tenants(
    store: RunStore, caller: auth.Principal, tenant: str | None
) -> list[str] | None:
    """Tenant slugs the caller may list runs of; None means all (platform admins)."""
    if caller.platform_admin:
        return [tenant] if tenant else None
    mine = [
        d["slug"] for d in store.tenants.find({}, {"slug": 1}) if caller.can_read(str(d["_id"]))
    ]
    return [t for t in mine if tenant is None or t == tenant]


async def _event_stream(
    store: RunStore, run_id: str, after: int, poll: float
) -> AsyncIterator[bytes]:
    """Server-sent events of a run, resumable by sequence number; ends when the run ends."""
    while True:
        events = await asyncio.to_thread(_events, store, run_id, after)
        for event in events:
            after = event.pop("seq")
            event.pop("at", None)
            data = json.dumps(event, default=str)
            yield f"id: {after}\nevent: {event.get('kind', 'message')}\ndata: {data}\n\n".encode()
        run = await asyncio.to_thread(store.get, run_id)
        if run is None or (run.state in FINISHED and not events):
            yield b"event: end\ndata: {}\n\n"
            return
        await asyncio.sleep(poll)


def _events(store: RunStore, run_id: str, after: int) -> list[dict[str, Any]]:
    return list(store.events_after(run_id, after))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
