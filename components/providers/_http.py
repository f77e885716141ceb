"""Shared HTTP plumbing for vendor API clients (Stalwart, OCIS; Robot next).

Every failure a client raises is an ``ApiError``; whether a retry can help decides the class::

    ApiError                  .system, .status (HTTP status or None), .message, .retryable
     ├── RetryableApiError    429, 408, 5xx, timeouts, connection errors (.retry_after)
     └── PermanentApiError    other 4xx, protocol errors, vendor-level refusals

``str(error)`` always starts with ``"<system>: "`` (``stalwart: ``, ``ocis: ``, ...). Dynamic
providers run in the engine's provider process, so the automation layer only sees that text and
classifies it by the prefix. Messages are redacted (bearer/basic credentials, password-like
fields, private keys, the client's own secrets) and cut, so they can go into run records.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import httpx

BODY_LIMIT = 256
MESSAGE_LIMIT = 512
REDACTED = "[REDACTED]"

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRYABLE_STATUS = frozenset({408, 429})
# Failures where the request never reached the server: safe to resend even a POST.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|token|api[_-]?key|access[_-]?token|"
            r"client[_-]?secret|private[_-]?key)[\"']?\s*[:=]\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;&}]+)"
        ),
        rf'\1"{REDACTED}"',
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials: the given secret values first, then anything that looks like one."""
    for secret in secrets:
        if len(secret) >= 4:  # shorter values would shred ordinary words
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def excerpt(text: str, secrets: Iterable[str] = (), limit: int = BODY_LIMIT) -> str:
    """A redacted, cut, single-line excerpt of a response body or vendor message."""
    flat = " ".join(redact(text[: limit * 64], secrets).split())
    return flat if len(flat) <= limit else flat[:limit] + "...(cut)"


# Ends the message of every retryable error: the one thing the run classification needs to know.
RETRYABLE_MARKER = "(retryable)"


class ApiError(Exception):
    """A vendor API call failed; ``retryable`` says whether trying again later can help."""

    retryable: bool = False

    def __init__(
        self,
        system: str,
        message: str,
        *,
        status: int | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.system = system
        self.status = status
        self.message = excerpt(message, secrets, MESSAGE_LIMIT)
        # The engine passes only this text on; automation/errors.py reads the marker.
        marker = f" {RETRYABLE_MARKER}" if self.retryable else ""
        super().__init__(f"{system}: {self.message}{marker}")


class RetryableApiError(ApiError):
    """Rate limit, server error, timeout or lost connection: a later attempt may succeed."""

    retryable = True

    def __init__(
        self,
        system: str,
        message: str,
        *,
        status: int | None = None,
        secrets: Iterable[str] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(system, message, status=status, secrets=secrets)
        self.retry_after = retry_after


class PermanentApiError(ApiError):
    """Refused request or broken protocol: retrying the same call cannot help."""


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``, kept out of ``repr`` and logs."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and for how long a client retries retryable failures."""

    attempts: int = 4
    """Tries in total, the first one included."""
    base_delay: float = 0.5
    """Seconds before the second try; doubles with every further try."""
    max_delay: float = 8.0
    """Cap on one backoff step, in seconds."""
    max_retry_after: float = 30.0
    """A longer ``Retry-After`` is not waited for: the error is raised with ``retry_after``."""
    budget: float = 60.0
    """Seconds a call may take from the first try, waits included."""

    def backoff(self, attempt: int, jitter: float) -> float:
        """Delay before try ``attempt + 1``: capped exponential with half of it jittered."""
        step = min(self.max_delay, self.base_delay * 2.0**attempt)
        return step / 2 + step / 2 * jitter


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in delta-seconds; the HTTP-date form falls back to backoff."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class _Closing:
    """``with`` support: ``close()`` on exit."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class VendorClient(_Closing):
    """An ``httpx.Client`` for one vendor: classified errors, redaction and bounded retries."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        secrets: Sequence[str] = (),
        timeout: httpx.Timeout | float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.system = system
        self.secrets = tuple(secrets)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._http = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    def permanent(self, message: str, status: int | None = None) -> PermanentApiError:
        return PermanentApiError(self.system, message, status=status, secrets=self.secrets)

    def retryable(self, message: str, status: int | None = None) -> RetryableApiError:
        return RetryableApiError(self.system, message, status=status, secrets=self.secrets)

    def json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The JSON object in ``response``; a permanent error names ``what`` otherwise."""
        return self.as_object(self.json_value(response, what), what)

    def json_value(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self.permanent(f"{what}: response is not JSON", response.status_code) from None

    def as_object(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.permanent(f"{what}: expected a JSON object, got {type(value).__name__}")
        return value

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request; return a 2xx response or raise an ``ApiError``.

        Idempotent requests are retried on every retryable failure. Others (POST by default)
        only when the server cannot have acted on them: connect failures and 429.
        """
        if idempotent is None:
            idempotent = method.upper() in _IDEMPOTENT_METHODS
        deadline = self._clock() + self.retry.budget
        attempt = 0
        while True:
            try:
                return self._send_once(method, url, json, headers)
            except RetryableApiError as err:
                safe = idempotent or err.status == 429 or isinstance(err.__cause__, _UNSENT)
                delay = self._delay(err, attempt)
                attempt += 1
                if (
                    not safe
                    or delay is None
                    or attempt >= self.retry.attempts
                    or self._clock() + delay > deadline
                ):
                    raise
                self._sleep(delay)

    def _delay(self, err: RetryableApiError, attempt: int) -> float | None:
        if err.retry_after is None:
            return self.retry.backoff(attempt, self._jitter())
        if err.retry_after > self.retry.max_retry_after:
            return None  # the caller schedules the next run; Retry-After stays on the error
        return err.retry_after

    def _transport(self, method: str, url: str, where: str, **request: Any) -> httpx.Response:
        """Send one request; transport failures become retryable or permanent ApiErrors."""
        try:
            return self._http.request(method, url, **request)
        except httpx.TimeoutException as exc:
            raise self.retryable(f"timeout on {where} ({type(exc).__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise self.retryable(f"connection failed on {where} ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise self.permanent(f"request failed on {where} ({type(exc).__name__})") from exc

    def _send_once(
        self, method: str, url: str, json: Any, headers: Mapping[str, str] | None
    ) -> httpx.Response:
        where = describe_request(method, url)
        response = self._transport(method, url, where, json=json, headers=headers)
        if response.is_success:
            return response
        status = response.status_code
        text = f"{status} {response.reason_phrase}: {where}: {excerpt(response.text, self.secrets)}"
        if status in _RETRYABLE_STATUS or status >= 500:
            raise RetryableApiError(
                self.system,
                text,
                status=status,
                secrets=self.secrets,
                retry_after=retry_after_seconds(response),
            )
        raise self.permanent(text, status)


class TokenClient(_Closing):
    """Base of a typed vendor client: a ``VendorClient`` with bearer auth that keeps the token
    out of every message; closed on ``with`` exit. Subclasses set ``system``."""

    system: ClassVar[str]

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = VendorClient(
            self.system,
            url,
            auth=BearerAuth(token),
            secrets=(token,),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            retry=retry,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )

    def close(self) -> None:
        self._http.close()


def describe_request(method: str, url: str) -> str:
    """The request as messages name it: method and path, never the query or a credential."""
    return f"{method.upper()} {httpx.URL(url).path or '/'}"
