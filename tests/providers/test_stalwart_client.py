"""StalwartClient's error mapping and retries against the fake Stalwart over real HTTP."""

from __future__ import annotations

import functools

import pytest

from components.providers._http import ApiError
from components.providers.stalwart import (
    PermanentApiError,
    RetryableApiError,
    StalwartClient,
    StalwartSetError,
)
from tests.fakes.stalwart_server import FakeStalwart
from tests.providers.conftest import POLICY, Clock, clocked_client, error_texts

client_for = functools.partial(clocked_client, StalwartClient)


def test_429_is_retried_after_the_servers_retry_after(stalwart: FakeStalwart) -> None:
    clock = Clock()
    with client_for(stalwart, clock) as client:
        client.session()
        stalwart.fail_next(429, times=2, retry_after="3")
        assert client.create_domain({"name": "acme.example"})  # a write: 429 means not done

    assert clock.sleeps == [3.0, 3.0]
    assert stalwart.calls["x:Domain/set"] == 1
    assert len(stalwart.registry.domains) == 1


def test_a_retry_after_beyond_the_cap_is_reported_not_waited(stalwart: FakeStalwart) -> None:
    clock = Clock()
    stalwart.fail_next(429, retry_after="3600")
    with client_for(stalwart, clock) as client, pytest.raises(RetryableApiError) as err:
        client.find_domain("acme.example")
    assert (err.value.status, err.value.retry_after, clock.sleeps) == (429, 3600.0, [])


def test_5xx_on_a_read_is_retried_with_backoff_then_gives_up(stalwart: FakeStalwart) -> None:
    clock = Clock()
    stalwart.fail_next(503, times=10)
    with client_for(stalwart, clock) as client, pytest.raises(RetryableApiError) as err:
        client.find_domain("acme.example")

    assert err.value.status == 503
    assert err.value.retryable is True
    assert str(err.value).startswith("stalwart: 503 Service Unavailable: GET /jmap/session")
    assert stalwart.requests == POLICY.attempts
    assert len(clock.sleeps) == POLICY.attempts - 1
    assert 0.5 <= clock.sleeps[0] <= 1.0 and all(s <= POLICY.max_delay for s in clock.sleeps)


def test_5xx_then_success_on_a_read(stalwart: FakeStalwart) -> None:
    clock = Clock()
    stalwart.fail_next(502, times=2)
    with client_for(stalwart, clock) as client:
        assert client.find_domain("none.example") is None
    assert len(clock.sleeps) == 2


def test_5xx_on_a_write_is_not_resent(stalwart: FakeStalwart) -> None:
    clock = Clock()
    with client_for(stalwart, clock) as client:
        client.session()
        stalwart.fail_next(500, times=3)
        with pytest.raises(RetryableApiError, match="500"):
            client.create_domain({"name": "acme.example"})
    assert clock.sleeps == []
    assert stalwart.requests == 2


def test_timeout_on_a_read_is_retried(stalwart: FakeStalwart) -> None:
    clock = Clock()
    with client_for(stalwart, clock, timeout=0.2) as client:
        client.session()
        stalwart.slow_next(1.0)
        assert client.find_domain("acme.example") is None
    assert len(clock.sleeps) == 1


def test_4xx_is_permanent_and_not_retried(stalwart: FakeStalwart) -> None:
    clock = Clock()
    stalwart.fail_next(400)
    with client_for(stalwart, clock) as client, pytest.raises(PermanentApiError) as err:
        client.find_domain("acme.example")
    assert (err.value.status, err.value.retryable, clock.sleeps) == (400, False, [])
    assert stalwart.requests == 1


def test_401_stops_at_once(stalwart: FakeStalwart) -> None:
    clock = Clock()
    wrong = "API_wrong"  # noqa: S105 - a test value
    with (
        client_for(stalwart, clock, token=wrong) as client,
        pytest.raises(PermanentApiError, match=r"^stalwart: 401 Unauthorized") as err,
    ):
        client.find_domain("acme.example")
    assert err.value.status == 401
    assert (stalwart.requests, clock.sleeps) == (1, [])


def test_jmap_method_and_set_errors_are_mapped(stalwart: FakeStalwart) -> None:
    clock = Clock()
    with client_for(stalwart, clock) as client:
        with pytest.raises(PermanentApiError, match="x:Domain/query failed: unsupportedFilter"):
            client.query("Domain", {"colour": "blue"})
        with pytest.raises(StalwartSetError) as bad:
            client.create_domain({"name": "acme.example", "colour": "blue"})
        assert (bad.value.set_type, bad.value.properties) == ("invalidProperties", ("colour",))
        with pytest.raises(StalwartSetError, match="invalidPatch"):
            client.create_domain({"name": "acme.example", "dnsZoneFile": "x"})
        client.create_domain({"name": "acme.example"})
        with pytest.raises(StalwartSetError, match="primaryKeyViolation") as dup:
            client.create_domain({"name": "acme.example"})
        assert dup.value.properties == ("name",)
        assert client.destroy_domain("b404") is False  # notFound on destroy is not an error
    assert clock.sleeps == []


@pytest.mark.parametrize("scenario", ["401", "400", "503", "set", "timeout"])
def test_the_token_never_appears_in_an_error(stalwart: FakeStalwart, scenario: str) -> None:
    stalwart.echo_auth = True  # the server quotes the Authorization header back
    clock = Clock()
    token = stalwart.token if scenario != "401" else f"{stalwart.token}-stale"
    with client_for(stalwart, clock, token=token, timeout=0.1) as client:
        if scenario in ("400", "503"):
            stalwart.fail_next(int(scenario), times=9)
        if scenario == "timeout":
            stalwart.slow_next(1.0, times=9)
        with pytest.raises(ApiError) as err:
            if scenario == "set":
                # The SetError names the offending property, which here holds the token.
                client.create_domain({"name": "acme.example", f"x{token}": 1})
            else:
                client.find_domain("acme.example")

    assert str(err.value).startswith("stalwart: ")
    for text in error_texts(err.value):
        assert token not in text
        assert stalwart.token not in text
