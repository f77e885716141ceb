"""Shared fixtures and helpers of the provider tests.

The fake Stalwart and OCIS running per test, providers configured for them like the engine
would, a fake clock for the clients' retries, and Pulumi's mock runtime for the components.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pulumi
import pytest
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import wait_for_rpcs

from components.providers._http import ApiError, RetryPolicy, TokenClient
from components.providers.ocis import SpaceProvider
from components.providers.stalwart import DomainProvider
from tests.fakes.http_fake import LoopbackFake, running
from tests.fakes.ocis_server import FakeOcis
from tests.fakes.stalwart_server import FakeStalwart

ProviderT = TypeVar("ProviderT", bound=ResourceProvider)
ClientT = TypeVar("ClientT", bound=TokenClient)

# Real retries with tiny waits: the behaviour under test, not the production pacing.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, budget=5.0)
# The production pacing, for clients under a fake clock.
POLICY = RetryPolicy(attempts=4, base_delay=1.0, max_delay=2.0, max_retry_after=30.0, budget=60)
# Each provider's stack config namespace, written out on purpose.
_NAMESPACES: dict[type[ResourceProvider], str] = {DomainProvider: "stalwart", SpaceProvider: "ocis"}


# --- fakes and providers -------------------------------------------------------------------


@pytest.fixture
def stalwart() -> Iterator[FakeStalwart]:
    fake = FakeStalwart()
    fake.registry.dkim_delay = 0.05
    with running(fake):
        yield fake


@pytest.fixture
def ocis() -> Iterator[FakeOcis]:
    with running(FakeOcis()) as fake:
        fake.registry.add_group("acme")
        fake.registry.add_group("acme-admins")
        yield fake


def configured(provider: ProviderT, url: str, token: str) -> ProviderT:
    """Call ``configure`` as the provider host does, with the whole (namespaced) stack config."""
    namespace = _NAMESPACES[type(provider)]
    raw = {f"{namespace}:url": url, f"{namespace}:token": token, "dezky-infra:environment": "test"}
    provider.configure(ConfigureRequest(Config(raw, "dezky-infra")))
    return provider


@pytest.fixture
def provider(stalwart: FakeStalwart) -> DomainProvider:
    fresh = DomainProvider(dkim_timeout=2.0, poll_interval=0.02, http_timeout=2.0, retry=FAST_RETRY)
    return configured(fresh, stalwart.url, stalwart.token)


def state_payload(provider: ResourceProvider) -> bytes:
    """The provider as the same serializer Pulumi uses puts it into state."""
    return base64.b64decode(serialize_provider(provider))


# --- clients under a fake clock ------------------------------------------------------------


class Clock:
    """A fake monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def clocked_client(
    client_type: type[ClientT],
    fake: LoopbackFake,
    clock: Clock,
    token: str | None = None,
    timeout: float = 10.0,
) -> ClientT:
    """A client of ``fake`` that retries with ``POLICY`` and waits on ``clock``."""
    return client_type(
        fake.url, token or fake.token, timeout=timeout, retry=POLICY, sleep=clock.sleep, clock=clock
    )


def error_texts(error: ApiError) -> list[str]:
    """Every text an error shows: its ``str``, ``repr`` and message and those of its causes."""
    texts = [str(error), repr(error), error.message]
    cause = error.__cause__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__
    return texts


# --- components under Pulumi's mock runtime ------------------------------------------------


class Recorder(pulumi.runtime.Mocks):
    """Answers registrations like a provider would and keeps their inputs."""

    def __init__(self, outputs: Mapping[str, dict[str, Any]]) -> None:
        self.outputs = outputs
        """Outputs the provider adds, by resource type."""
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.typ] = dict(args.inputs)
        outs = dict(args.inputs)
        outs.update(self.outputs.get(args.typ, {}))
        return f"{args.name}_id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class Monitor(mocks.MockMonitor):
    """The mock monitor, also keeping the resource options the engine would receive."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.options: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.options[request.type] = {
            "name": request.name,
            "parent": request.parent,
            "protect": request.protect,
            "retain_on_delete": request.retainOnDelete,
        }
        try:
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        finally:
            _close_worker_loop()


def _close_worker_loop() -> None:
    """Close the loop the mock monitor opens in each executor thread (else: ResourceWarning)."""
    if threading.current_thread() is threading.main_thread():
        return
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


def render_component(
    build: Callable[[], pulumi.Resource],
    watched: Iterable[str],
    outputs: Mapping[str, dict[str, Any]],
) -> tuple[Recorder, Monitor, dict[str, Any]]:
    """Build a component in a fresh mock deployment whose provider adds ``outputs`` (by resource
    type); return the registrations and the values of the component's ``watched`` outputs."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # before set_mocks: its futures bind to this loop
    recorder = Recorder(outputs)
    monitor = Monitor(recorder)
    mocks.set_mocks(recorder, project="dezky-infra", stack="tenant-acme", monitor=monitor)
    settings.SETTINGS.feature_support["parameterization"] = True
    seen: dict[str, Any] = {}
    try:
        component = build()
        for key in watched:
            getattr(component, key).apply(lambda v, key=key: seen.setdefault(key, v))
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return recorder, monitor, seen
