"""The shared vendor HTTP helpers: redaction, cutting, backoff, Retry-After."""

from __future__ import annotations

import httpx
import pytest

from components.providers._http import (
    BODY_LIMIT,
    PermanentApiError,
    RetryableApiError,
    RetryPolicy,
    VendorClient,
    excerpt,
    redact,
    retry_after_seconds,
)

SECRET = "s3cr3t-value-42"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f'{{"authorization": "Basic {SECRET}"}}',
        f'{{"password": "{SECRET}", "user": "admin"}}',
        f"token={SECRET}&next=1",
        f'{{"privateKey": {{"@type": "Text", "secret": "{SECRET}"}}}}',
        f"-----BEGIN PRIVATE KEY-----\\n{SECRET}\\n-----END PRIVATE KEY-----",
        f"-----BEGIN RSA PRIVATE KEY-----\n{SECRET}",  # cut off before its END line
        f"the configured value {SECRET} leaked",
    ],
)
def test_redact_removes_credentials(text: str) -> None:
    redacted = redact(text, secrets=[SECRET])
    assert SECRET not in redacted
    assert "[REDACTED]" in redacted


def test_redact_keeps_ordinary_text() -> None:
    text = "x:Domain/set could not create 'd0': primaryKeyViolation (properties: name)"
    assert redact(text, secrets=["ab"]) == text  # too short to be a real secret


def test_excerpt_is_one_cut_line() -> None:
    body = "line one\n" + "y" * 1000
    cut = excerpt(body)
    assert "\n" not in cut
    assert cut.endswith("...(cut)") and len(cut) == BODY_LIMIT + len("...(cut)")


def test_errors_carry_system_prefix_status_and_retryability() -> None:
    retryable = RetryableApiError("ocis", f"503 busy: {SECRET}", status=503, secrets=[SECRET])
    permanent = PermanentApiError("robot", "400 bad")
    assert str(retryable) == "ocis: 503 busy: [REDACTED] (retryable)"
    assert (retryable.system, retryable.status, retryable.retryable) == ("ocis", 503, True)
    assert (str(permanent), permanent.status, permanent.retryable) == (
        "robot: 400 bad",
        None,
        False,
    )


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    assert [policy.backoff(n, 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert [policy.backoff(n, 0.0) for n in range(3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    assert retry_after_seconds(httpx.Response(429, headers=headers)) == expected


def _client(handler: httpx.MockTransport, sleeps: list[float]) -> VendorClient:
    policy = RetryPolicy(attempts=3, base_delay=0.1)
    return VendorClient(
        "ocis", "http://ocis.test", retry=policy, transport=handler, sleep=sleeps.append
    )


def test_a_post_is_resent_only_when_it_never_reached_the_server() -> None:
    seen: list[str] = []

    def refuse_then_accept(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Purge", ""))
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"id": "x"})

    sleeps: list[float] = []
    with _client(httpx.MockTransport(refuse_then_accept), sleeps) as client:
        response = client.request("POST", "/drives", json={}, headers={"Purge": "T"})
    assert (response.status_code, seen, len(sleeps)) == (201, ["T", "T"], 1)


def test_a_post_that_timed_out_is_not_resent() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    sleeps: list[float] = []
    with (
        _client(httpx.MockTransport(slow), sleeps) as client,
        pytest.raises(RetryableApiError) as err,
    ):
        client.request("POST", "/drives", json={})
    assert str(err.value) == "ocis: timeout on POST /drives (ReadTimeout) (retryable)"
    assert (err.value.status, sleeps) == (None, [])
