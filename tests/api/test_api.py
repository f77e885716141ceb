"""The run API over real HTTP (uvicorn on loopback), with real tokens and a real MongoDB wire
server; the end-to-end case runs the worker against the substitute engine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pulumi.automation as auto
import pytest
import uvicorn
from bson import ObjectId
from pydantic import SecretStr
from pymongo.database import Database

from automation.api.app import ApiSettings, create_app
from automation.api.auth import TokenVerifier
from automation.engine import Engine
from automation.mongo import RunStore
from automation.settings import Settings
from automation.worker import Worker
from tests.api.conftest import Issuer
from tests.fakes.pulumi_cli import install_fake_pulumi
from tests.runs.conftest import make_repo

ACME, BETA = ObjectId(), ObjectId()


class Api:
    """A served app and a client; ``as_(subject)`` gives that subject's bearer headers."""

    def __init__(self, base: str, issuer: Issuer, store: RunStore) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.issuer, self.store = issuer, store

    def as_(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.token(sub=subject)}"}


@pytest.fixture
def api(
    mongo_db: Database[dict[str, Any]], verifier: TokenVerifier, issuer: Issuer
) -> Iterator[Api]:
    store = RunStore(mongo_db, timedelta(seconds=5))
    store.ensure_indexes()
    mongo_db["tenants"].insert_many(
        [
            {"_id": t, "slug": slug, "provisioningStatus": {}}
            for t, slug in ((ACME, "acme"), (BETA, "beta"))
        ]
    )
    mongo_db["users"].insert_many([
        {"authentikSubjectId": "admin", "platformAdmin": True, "tenantIds": []},
        {"authentikSubjectId": "anna", "platformAdmin": False, "tenantIds": [str(ACME)]},
        {"authentikSubjectId": "nobody", "platformAdmin": False, "tenantIds": []},
    ])  # fmt: skip
    app = create_app(store, verifier, ApiSettings(runs_per_minute=5, event_poll_seconds=0.05))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = Api(f"http://127.0.0.1:{port}", issuer, store)
    try:
        yield client
    finally:
        client.http.close()
        server.should_exit = True
        thread.join(5)


def test_health_needs_no_token_and_openapi_is_published(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    assert api.http.get("/readyz").status_code == 200
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/events", "/runs/{run_id}/cancel",
            "/tenants/{slug}/status"} <= set(paths)  # fmt: skip


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic x"}]
)
def test_no_valid_token_is_401_without_details(api: Api, headers: dict[str, str]) -> None:
    answer = api.http.get("/runs", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "invalid or missing bearer token"}


def test_a_valid_token_without_an_account_is_403(api: Api) -> None:
    assert api.http.get("/runs", headers=api.as_("stranger")).status_code == 403


def test_admin_triggers_and_reads_a_run(api: Api) -> None:
    answer = api.http.post(
        "/runs", json={"tenant": "acme", "operation": "up"}, headers=api.as_("admin")
    )
    assert answer.status_code == 202
    run = answer.json()
    assert (run["state"], run["stack"], run["requested_by"]) == ("queued", "tenant-acme", "admin")
    assert answer.headers["Location"] == f"/runs/{run['id']}"
    assert api.http.get(f"/runs/{run['id']}", headers=api.as_("admin")).json()["id"] == run["id"]
    again = api.http.post(
        "/runs", json={"stack": "tenant-acme", "operation": "up"}, headers=api.as_("admin")
    )
    assert again.json()["id"] == run["id"]  # a still-queued run is reused


def test_idempotency_key_returns_the_same_run(api: Api) -> None:
    headers = {**api.as_("admin"), "Idempotency-Key": "portal-123"}
    first = api.http.post("/runs", json={"tenant": "acme", "operation": "preview"}, headers=headers)
    api.store.runs.update_one({"_id": first.json()["id"]}, {"$set": {"state": "succeeded"}})
    retried = api.http.post(
        "/runs", json={"tenant": "acme", "operation": "preview"}, headers=headers
    )
    assert retried.json()["id"] == first.json()["id"]


def test_a_tenant_member_reads_and_previews_only_its_tenant(api: Api) -> None:
    anna = api.as_("anna")
    assert (
        api.http.post(
            "/runs", json={"tenant": "acme", "operation": "preview"}, headers=anna
        ).status_code
        == 202
    )
    assert (
        api.http.post("/runs", json={"tenant": "acme", "operation": "up"}, headers=anna).status_code
        == 403
    )
    assert (
        api.http.post(
            "/runs", json={"tenant": "beta", "operation": "preview"}, headers=anna
        ).status_code
        == 403
    )
    assert (
        api.http.post(
            "/runs", json={"stack": "platform", "operation": "preview"}, headers=anna
        ).status_code
        == 403
    )
    beta_run = api.http.post(
        "/runs", json={"tenant": "beta", "operation": "up"}, headers=api.as_("admin")
    ).json()
    assert api.http.get(f"/runs/{beta_run['id']}", headers=anna).status_code == 404
    assert api.http.post(f"/runs/{beta_run['id']}/cancel", headers=anna).status_code == 404
    assert api.http.get("/tenants/beta/status", headers=anna).status_code == 404
    listed = api.http.get("/runs", headers=anna).json()["runs"]
    assert {r["tenant"] for r in listed} == {"acme"}
    assert api.http.get("/runs", headers=api.as_("nobody")).json()["runs"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"tenant": "ghost", "operation": "preview"}, 404),
        ({"tenant": "acme", "operation": "destroy"}, 422),
        ({"tenant": "acme", "stack": "tenant-acme", "operation": "up"}, 422),
        ({"tenant": "Acme!", "operation": "up"}, 422),
        ({"tenant": "acme", "operation": "up", "ignore_protect": True}, 422),
    ],
)
def test_bad_requests(api: Api, body: dict[str, Any], status: int) -> None:
    answer = api.http.post("/runs", json=body, headers=api.as_("admin"))
    assert answer.status_code == status, answer.text
    assert "Traceback" not in answer.text


def test_unknown_run_is_404(api: Api) -> None:
    assert api.http.get("/runs/nope", headers=api.as_("admin")).status_code == 404


def test_rate_limit_per_user(api: Api) -> None:
    codes = []
    for i in range(7):
        body = {
            "tenant": "acme" if i % 2 else "beta",
            "operation": ["preview", "up", "refresh", "drift"][i % 4],
        }
        codes.append(api.http.post("/runs", json=body, headers=api.as_("admin")))
    assert [c.status_code for c in codes[:5]] == [202] * 5
    assert codes[5].status_code == 429 and int(codes[5].headers["Retry-After"]) >= 1
    assert (
        api.http.post(
            "/runs", json={"tenant": "acme", "operation": "preview"}, headers=api.as_("anna")
        ).status_code
        == 202
    )


def test_pagination(api: Api) -> None:
    for op in ("preview", "up", "refresh", "drift"):
        api.http.post("/runs", json={"tenant": "acme", "operation": op}, headers=api.as_("admin"))
    first = api.http.get("/runs", params={"limit": 3}, headers=api.as_("admin")).json()
    rest = api.http.get(
        "/runs", params={"limit": 3, "cursor": first["next_cursor"]}, headers=api.as_("admin")
    ).json()
    ids = [r["id"] for r in first["runs"] + rest["runs"]]
    assert len(ids) == 4 == len(set(ids)) and rest["next_cursor"] is None
    assert (
        api.http.get("/runs", params={"cursor": "bogus"}, headers=api.as_("admin")).status_code
        == 422
    )


def test_end_to_end_run_events_and_tenant_status(
    api: Api, tmp_path: Path, mongo_db: Database[dict[str, Any]]
) -> None:
    repo = make_repo(tmp_path)
    settings = Settings(repo=repo, passphrase=SecretStr("pw"), lease_seconds=5)
    steps = [
        {"op": "create", "type": "kubernetes:core/v1:Namespace", "name": "k8s-namespace"},
        {"op": "create", "type": "pulumi-python:dynamic/ocis:Space", "name": "files-space"},
    ]
    steps = [{**step, "seconds": 0.3} for step in steps]
    fake = install_fake_pulumi(
        tmp_path / "fake", {"stacks": {"*": {"steps": steps, "outputs": {"files_drive_id": "d-1"}}}}
    )
    engine = lambda: Engine(settings, auto.PulumiCommand(root=str(fake)))  # noqa: E731
    worker = Worker(api.store, settings, engine, threading.Event(), name="w-e2e")

    run = api.http.post(
        "/runs", json={"tenant": "acme", "operation": "up"}, headers=api.as_("admin")
    ).json()
    threading.Thread(target=worker.run_once).start()
    events = []
    with api.http.stream("GET", f"/runs/{run['id']}/events", headers=api.as_("admin")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in stream.iter_lines():
            if line:
                key, _, value = line.partition(": ")
                block[key] = value
                continue
            events.append(block)
            if block.get("event") == "end":
                break
            block = {}
    kinds = [e.get("event") for e in events]
    assert kinds[0] == "start" and kinds[-2] == "done" and kinds[-1] == "end"
    assert any(
        json.loads(e["data"]).get("name") == "files-space"
        for e in events
        if e.get("event") == "step"
    )
    # Resume after the third event: only what came later.
    third = events[2]["id"]
    headers = {**api.as_("admin"), "Last-Event-ID": third}
    with api.http.stream("GET", f"/runs/{run['id']}/events", headers=headers) as stream:
        resumed = [line for line in stream.iter_lines() if line.startswith("id: ")]
    assert resumed[0] == f"id: {int(third) + 1}"

    done = api.http.get(f"/runs/{run['id']}", headers=api.as_("admin")).json()
    assert done["state"] == "succeeded" and done["summary"]["create"] == 2
    status = api.http.get("/tenants/acme/status", headers=api.as_("anna")).json()
    assert status["provisioning_status"]["ocis"] == "ok"
    assert status["recent_runs"][0]["id"] == run["id"]
    assert mongo_db["tenants"].find_one({"slug": "acme"})["ocisSpaceId"] == "d-1"  # type: ignore[index]


def test_rights_are_reread_after_the_cache_window(mongo_db: Database[dict[str, Any]]) -> None:
    from automation.api.app import PrincipalCache

    now = [0.0]
    mongo_db["users"].insert_one(
        {"authentikSubjectId": "eve", "platformAdmin": True, "tenantIds": []}
    )
    cache = PrincipalCache(RunStore(mongo_db), 10, clock=lambda: now[0])
    assert cache.get("eve").platform_admin  # type: ignore[union-attr]
    mongo_db["users"].update_one({"authentikSubjectId": "eve"}, {"$set": {"platformAdmin": False}})
    now[0] = 9.0
    assert cache.get("eve").platform_admin  # type: ignore[union-attr]
    now[0] = 10.5
    assert not cache.get("eve").platform_admin  # type: ignore[union-attr]


@pytest.mark.parametrize("last_id", ["9" * 30, "-1", "abc", "1e3"])
def test_a_bad_last_event_id_restarts_the_stream(api: Api, last_id: str) -> None:
    run = api.http.post(
        "/runs", json={"tenant": "acme", "operation": "preview"}, headers=api.as_("admin")
    ).json()
    api.store.request_cancel(run["id"])  # finished: the stream ends at once
    headers = {**api.as_("admin"), "Last-Event-ID": last_id}
    answer = api.http.get(f"/runs/{run['id']}/events", headers=headers)
    assert answer.status_code == 200 and "event: end" in answer.text
