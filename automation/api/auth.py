"""Who is calling the run API, and what they may do.

Authentication: an Authentik *access token* (a JWT) signed by one of the configured issuers,
checked against that issuer's JWKS (RFC 8725; notes in RELIABILITY-PERF.md section D).
Authorization: the caller's ``users`` document in MongoDB, never claims in the token.

Errors::

    AuthError(reason)              the request is not authenticated: answer 401
     └── KeysUnavailableError      the issuer's keys could not be fetched: 503 is fairer

``reason`` is short fixed text for logs; it never contains the token or a claim value.

This is the one module of ``automation`` allowed to speak HTTP (import contract in
pyproject.toml): it fetches discovery documents and key sets from the configured issuers.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from bson import ObjectId
from jwt.exceptions import InvalidSubjectError
from jwt.types import Options
from pymongo.collection import Collection

from automation.records import Operation

# RFC 8725 §3.1: an allow-list, one key type per algorithm. HS* is refused on purpose: Authentik
# falls back to HS256 with the client secret when no signing key is set (RELIABILITY-PERF D3).
ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
# Claims an access token must carry; `azp` is what tells it from an ID token in Authentik.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "azp")
# Bigger than any Authentik token, small enough that parsing junk costs nothing.
MAX_TOKEN_CHARS = 16 * 1024
MAX_KID_CHARS = 256
# Discovery documents and key sets are a few KiB; a larger answer is not one.
MAX_DOCUMENT_BYTES = 1024 * 1024
DISCOVERY_PATH = ".well-known/openid-configuration"
# A verified token is reused for at most this long (never past its expiry): the portal sends
# the same token on every poll, and a signature check is most of a cheap request's CPU. No
# looser than the key cache: a withdrawn key is only noticed at the next JWKS fetch anyway.
VERIFIED_TOKEN_SECONDS = 60
VERIFIED_TOKENS_MAX = 10_000

# RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*)")

_log = logging.getLogger(__name__)


class AuthError(Exception):
    """A token or header was refused; ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailableError(AuthError):
    """The issuer's signing keys could not be fetched, so no token of it can be checked now."""


class _FetchError(Exception):
    """A discovery document or key set could not be fetched or read."""


@dataclass(frozen=True)
class AuthSettings:
    """Which tokens the run API accepts, and how it fetches the keys that sign them."""

    # Exact `iss` values; Authentik's per-provider issuer ends with a slash:
    # https://auth.example/application/o/<slug>/
    issuers: tuple[str, ...]
    # The operator application's client id: `aud` must include it and `azp` must equal it.
    audience: str = "dezky-operator"
    # Clock skew allowed on exp, nbf and iat (RFC 7519: "no more than a few minutes").
    leeway_seconds: int = 60
    # How long a fetched key set is trusted before it is fetched again.
    jwks_cache_seconds: int = 300
    # At most one refetch per issuer in this window for a token with an unknown key id.
    unknown_kid_cooldown_seconds: int = 30
    # Seconds for each discovery or key set request.
    http_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.issuers:
            raise ValueError("at least one token issuer is required")
        for issuer in self.issuers:
            _check_url(issuer, what="issuer")
        if not self.audience:
            raise ValueError("the token audience must not be empty")
        if not 0 <= self.leeway_seconds <= 300:
            raise ValueError("leeway_seconds must be between 0 and 300")
        if self.jwks_cache_seconds <= 0 or self.unknown_kid_cooldown_seconds <= 0:
            raise ValueError("jwks_cache_seconds and unknown_kid_cooldown_seconds must be > 0")
        if self.http_timeout <= 0:
            raise ValueError("http_timeout must be > 0")

    @classmethod
    def from_csv(cls, issuers: str, **options: Any) -> AuthSettings:
        """Settings from a comma-separated issuer list, as platform-api is configured."""
        parts = (part.strip() for part in issuers.split(","))
        return cls(issuers=tuple(dict.fromkeys(part for part in parts if part)), **options)


@dataclass(frozen=True)
class Claims:
    """The verified facts of an access token that the API uses."""

    subject: str
    issuer: str
    audience: tuple[str, ...]
    azp: str
    # Unix time.
    expires: float


class TokenVerifier:
    """Verifies Authentik access tokens against the configured issuers; share one per process."""

    def __init__(
        self,
        settings: AuthSettings,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        # A client we create is ours to close; an injected one stays its owner's.
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=settings.http_timeout)
        self._clock = clock
        self._caches = {issuer: _KeyCache(issuer, self._load_keys) for issuer in settings.issuers}
        self._jwks_uris: dict[str, str] = {}
        self._verified: dict[str, tuple[float, Claims]] = {}

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> TokenVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def verify(self, token: str) -> Claims:
        """The token's claims if it is a valid access token for this API, else ``AuthError``."""
        known = self.already_verified(token)
        if known is not None:
            return known
        header, payload = _peek(token)
        alg = _allowed_algorithm(header)
        issuer = self._configured_issuer(payload)
        key = self._signing_key(issuer, _key_id(header), alg)
        decoded = self._decode(token, key, alg, issuer)
        now = self._clock()
        _check_times(decoded, now, self._settings.leeway_seconds)
        claims = _access_claims(decoded, self._settings.audience)
        until = min(now + VERIFIED_TOKEN_SECONDS, claims.expires + self._settings.leeway_seconds)
        if len(self._verified) >= VERIFIED_TOKENS_MAX:  # bounded: a token flood cannot grow it
            self._verified = {}
        self._verified[token] = (until, claims)
        return claims

    def already_verified(self, token: str) -> Claims | None:
        """The claims of a token verified moments ago and still valid; no I/O, no signature."""
        known = self._verified.get(token) if isinstance(token, str) else None
        if known is None or known[0] <= self._clock():
            return None
        return known[1]

    def _configured_issuer(self, payload: Mapping[str, Any]) -> str:
        # The unverified `iss` only selects among configured issuers: an unknown one is never
        # contacted (RFC 8725 §3.8, RELIABILITY-PERF D4).
        issuer = payload.get("iss")
        if not isinstance(issuer, str) or issuer not in self._caches:
            raise AuthError("issuer not accepted")
        return issuer

    def _signing_key(self, issuer: str, kid: str, alg: str) -> jwt.PyJWK:
        cache = self._caches[issuer]
        key = cache.get(kid, self._clock(), self._settings)
        if key is None and not cache.loaded:
            raise KeysUnavailableError("signing keys unavailable")
        if key is None:
            raise AuthError("unknown key id")
        if key.algorithm_name != alg:
            raise AuthError("key does not match the algorithm")
        return key

    def _decode(self, token: str, key: jwt.PyJWK, alg: str, issuer: str) -> dict[str, Any]:
        # Times are checked against our own clock below (PyJWT reads the system clock).
        options: Options = {
            "require": list(REQUIRED_CLAIMS),
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "enforce_minimum_key_length": True,
        }
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=issuer,
                options=options,
            )
        except jwt.PyJWTError as error:
            raise AuthError(_reason(error)) from error

    def _load_keys(self, issuer: str) -> dict[str, jwt.PyJWK]:
        try:
            jwks_uri = self._jwks_uris.get(issuer) or self._discover(issuer)
            keys = _parse_jwks(self._get_json(jwks_uri))
        except _FetchError:
            # Discover again next time: the provider may have moved its key set.
            self._jwks_uris.pop(issuer, None)
            raise
        self._jwks_uris[issuer] = jwks_uri
        return keys

    def _discover(self, issuer: str) -> str:
        document = self._get_json(f"{issuer.rstrip('/')}/{DISCOVERY_PATH}")
        # OIDC Discovery §4.3: the document must name the issuer it was fetched for.
        if document.get("issuer") != issuer:
            raise _FetchError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _same_origin(jwks_uri, issuer):
            raise _FetchError("jwks_uri is missing or not on the issuer's host")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            body = self._get(url)
            document = json.loads(body)
        except httpx.HTTPError as error:
            raise _FetchError(f"GET {url}: {type(error).__name__}") from error
        except ValueError as error:
            raise _FetchError(f"GET {url}: not JSON") from error
        if not isinstance(document, dict):
            raise _FetchError(f"GET {url}: not a JSON object")
        return document

    def _get(self, url: str) -> bytes:
        # No redirects: keys come from the address the issuer published, nowhere else.
        request = self._http.stream(
            "GET", url, timeout=self._settings.http_timeout, follow_redirects=False
        )
        with request as response:
            if response.status_code != 200:
                raise _FetchError(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _FetchError(f"GET {url}: document too large")
        return bytes(body)


class _KeyCache:
    """One issuer's keys: fetched on first use, kept ``jwks_cache_seconds``, and refetched for
    an unknown key id at most once per cool-down, since any caller can send one (D2)."""

    def __init__(self, issuer: str, load: Callable[[str], dict[str, jwt.PyJWK]]) -> None:
        self._issuer = issuer
        self._load = load
        self._lock = threading.Lock()
        self._keys: Mapping[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def get(self, kid: str, now: float, settings: AuthSettings) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None and not self._expired(now, settings):
            return key  # the common case takes no lock
        with self._lock:
            if self._may_fetch(kid, now, settings):
                self._refresh(now)
            return self._keys.get(kid)

    def _expired(self, now: float, settings: AuthSettings) -> bool:
        return self._loaded_at is None or now - self._loaded_at >= settings.jwks_cache_seconds

    def _may_fetch(self, kid: str, now: float, settings: AuthSettings) -> bool:
        cooling = (
            self._attempted_at is not None
            and now - self._attempted_at < settings.unknown_kid_cooldown_seconds
        )
        return not cooling and (kid not in self._keys or self._expired(now, settings))

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            self._keys = self._load(self._issuer)
        except _FetchError as error:
            # Keep the keys we have: an Authentik outage should not log every operator out;
            # a withdrawn key disappears with the next successful fetch.
            _log.warning("auth: keys of %s not refreshed: %s", self._issuer, error)
            return
        self._loaded_at = now


def bearer_token(authorization_header: str | None) -> str:
    """The JWT from an ``Authorization: Bearer <jwt>`` header value, else ``AuthError``."""
    if not authorization_header:
        raise AuthError("missing bearer token")
    if len(authorization_header) > MAX_TOKEN_CHARS + 16:
        raise AuthError("authorization header too long")
    match = _BEARER.fullmatch(authorization_header)
    if match is None:
        raise AuthError("malformed authorization header")
    return match.group(1)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before any check, only to choose the issuer, key and algorithm."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("malformed token")
    try:
        decoded = jwt.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise AuthError("malformed token") from error
    return decoded["header"], decoded["payload"]


def _allowed_algorithm(header: Mapping[str, Any]) -> str:
    # Before any key lookup, so `none`, HS256 and friends cost no fetch (RFC 8725 §3.1).
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise AuthError("algorithm not allowed")
    return alg


def _key_id(header: Mapping[str, Any]) -> str:
    # Authentik always names its key; without a kid we would have to guess (and try each key).
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        raise AuthError("missing or malformed key id")
    return kid


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    expires = _numeric_date(claims, "exp")
    if expires is None or expires <= now - leeway:
        raise AuthError("token expired")
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and not_before > now + leeway:
        raise AuthError("token not yet valid")
    issued = _numeric_date(claims, "iat")
    if issued is not None and issued > now + leeway:
        raise AuthError("token issued in the future")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """The claim as a number, None when absent; anything else (NaN, text, true) is refused."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"malformed claim {name}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AuthError(f"malformed claim {name}")
    return value


def _access_claims(claims: Mapping[str, Any], audience: str) -> Claims:
    subject, azp = claims["sub"], claims["azp"]
    if not isinstance(subject, str) or not subject:
        raise AuthError("malformed claim sub")
    # Authentik sets azp=client_id on access tokens only, and aud=client_id on both kinds.
    if azp != audience:
        raise AuthError("not an access token for this API")
    aud = claims["aud"]
    return Claims(
        subject=subject,
        issuer=claims["iss"],
        audience=(aud,) if isinstance(aud, str) else tuple(aud),
        azp=azp,
        expires=claims["exp"],
    )


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAudienceError, "audience not accepted"),
    (jwt.InvalidIssuerError, "issuer not accepted"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "signing key refused"),
    (InvalidSubjectError, "malformed claim sub"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing claim {error.claim}"  # one of REQUIRED_CLAIMS, never token text
    return next((text for kind, text in _REASONS if isinstance(error, kind)), "invalid token")


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise _FetchError("the key set has no key list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        key = _usable_key(entry)
        if key is not None:
            keys.setdefault(str(key.key_id), key)
    return keys


def _usable_key(entry: object) -> jwt.PyJWK | None:
    """A signing key we accept, bound to its one algorithm; anything else is skipped."""
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        return None
    for alg, (kty, crv) in ALGORITHMS.items():
        if entry.get("kty") == kty and entry.get("crv") == crv and entry.get("alg", alg) == alg:
            try:
                return jwt.PyJWK(entry, algorithm=alg)
            except (jwt.PyJWTError, ValueError, TypeError):
                return None  # broken key material: skip it, keep the rest of the set
    return None


def _check_url(url: str, *, what: str) -> None:
    # Keys fetched over plain HTTP could be swapped on the way; loopback is for tests and dev.
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))
    if not secure or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{what} {url!r} must be an https URL without query or credentials")


def _same_origin(url: str, issuer: str) -> bool:
    try:
        _check_url(url, what="jwks_uri")
    except ValueError:
        return False
    left, right = urlsplit(url), urlsplit(issuer)
    return (left.scheme, left.netloc) == (right.scheme, right.netloc)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Principal:
    """A caller as the run API sees them: their ``users`` document, not their token."""

    subject: str
    user_id: str
    platform_admin: bool
    tenant_ids: frozenset[str]
    display_name: str | None = None
    email: str | None = None

    def can_read(self, tenant_id: str | None) -> bool:
        """Runs and status of a tenant (by its document id); None means a platform stack."""
        return self.platform_admin or (tenant_id is not None and tenant_id in self.tenant_ids)

    def can_trigger(self, tenant_id: str | None, operation: str) -> bool:
        """Start ``operation`` on the tenant's stack: admins anything, members a preview."""
        if self.platform_admin:
            return True
        return operation == Operation.PREVIEW and self.can_read(tenant_id)


_USER_FIELDS = ("platformAdmin", "tenantIds", "displayName", "name", "email")


def load_principal(users: Collection[Any], subject: str) -> Principal | None:
    """The principal for a verified token subject, or None when no single user matches."""
    if not isinstance(subject, str) or not subject:
        return None  # never hand a non-string to a query (operator injection)
    found = list(users.find({"authentikSubjectId": subject}, projection=_USER_FIELDS, limit=2))
    if len(found) > 1:
        # Two documents for one subject: refuse rather than pick one's rights by chance.
        _log.warning("auth: %d users documents share one authentikSubjectId", len(found))
        return None
    return _principal(found[0], subject) if found else None


def _principal(document: Mapping[str, Any], subject: str) -> Principal:
    raw_ids = document.get("tenantIds")
    ids = raw_ids if isinstance(raw_ids, list) else []
    return Principal(
        subject=subject,
        user_id=str(document["_id"]),
        # Only a real boolean true makes an admin; "false" or 1 do not.
        platform_admin=document.get("platformAdmin") is True,
        # platform-api stores ids as ObjectId or string; compare them as text.
        tenant_ids=frozenset(str(item) for item in ids if isinstance(item, str | ObjectId)),
        display_name=_text(document, "displayName") or _text(document, "name"),
        email=_text(document, "email"),
    )


def _text(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    return value if isinstance(value, str) and value else None
