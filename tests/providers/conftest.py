"""A running fake Stalwart per test and a provider configured for it like the engine would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components.providers._http import RetryPolicy
from components.providers.stalwart import DomainProvider
from tests.fakes.stalwart_server import FakeStalwart

# Real retries with tiny waits: the behaviour under test, not the production pacing.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, budget=5.0)


@pytest.fixture
def stalwart() -> Iterator[FakeStalwart]:
    fake = FakeStalwart()
    fake.registry.dkim_delay = 0.05
    with fake:
        yield fake
    assert not fake.errors, f"the fake server failed internally: {fake.errors!r}"


def configured(provider: DomainProvider, url: str, token: str) -> DomainProvider:
    """Call ``configure`` as the provider host does, with the whole (namespaced) stack config."""
    raw = {"stalwart:url": url, "stalwart:token": token, "dezky-infra:environment": "test"}
    provider.configure(ConfigureRequest(Config(raw, "dezky-infra")))
    return provider


@pytest.fixture
def provider(stalwart: FakeStalwart) -> DomainProvider:
    fresh = DomainProvider(dkim_timeout=2.0, poll_interval=0.02, http_timeout=2.0, retry=FAST_RETRY)
    return configured(fresh, stalwart.url, stalwart.token)
