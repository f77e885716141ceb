"""Fixtures for the run API tests: an Authentik-like OIDC provider over real HTTP on loopback,
a clock moved by hand, and a MongoDB wire server (SecantusDB).

``oidc_server`` serves, per application slug, what Authentik serves per provider:
``/application/o/<slug>/.well-known/openid-configuration`` and ``/application/o/<slug>/jwks/``,
counting each fetch. ``issuer`` is the operator application on it; it mints tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pymongo
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning
from pymongo.database import Database
from secantus import SecantusDBServer

from automation.api.auth import AuthSettings, TokenVerifier

AUDIENCE = "dezky-operator"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class FakeClock:
    """A clock the test moves by hand; it starts at the real time so tokens look current."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@functools.cache
def _private_key(alg: str, index: int, bits: int = 2048) -> PrivateKey:
    # Key generation is the slow part (RSA ~50 ms); tests reuse key material, never key ids.
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class SigningKey:
    """A private key with its key id and algorithm, and its public half as a JWK."""

    def __init__(self, kid: str, alg: str, private: PrivateKey) -> None:
        self.kid, self.alg, self.private = kid, alg, private

    def jwk(self) -> dict[str, Any]:
        public_key = self.private.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public = json.loads(ECAlgorithm.to_jwk(public_key))
        else:
            public = json.loads(RSAAlgorithm.to_jwk(public_key))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class Issuer:
    """One Authentik provider: its issuer URL, keys, published JWKS, and a token mint."""

    def __init__(self, server: OidcServer, slug: str, clock: FakeClock) -> None:
        self._server, self.clock = server, clock
        self.url = f"{server.base_url}/application/o/{slug}/"
        self.jwks_url = f"{self.url}jwks/"
        self.keys: dict[str, SigningKey] = {}
        self.published: list[str] = []
        # Merged into the discovery document (e.g. another issuer or jwks_uri).
        self.discovery_overrides: dict[str, Any] = {}
        # When set, both endpoints answer this HTTP status (an outage).
        self.fail_with: int | None = None
        # When set, the JWKS endpoint answers 302 to this URL.
        self.redirect_jwks_to: str | None = None
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.rsa_kid = self.add_key("RS256")
        self.ec_kid = self.add_key("ES256")

    def add_key(self, alg: str = "RS256", *, publish: bool = True, bits: int = 2048) -> str:
        """A new key (a fresh kid); published in the JWKS unless ``publish=False``."""
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        private = _private_key(alg, self._server.next_key_index(alg), bits)
        self.keys[kid] = SigningKey(kid, alg, private)
        if publish:
            self.publish(kid)
        return kid

    def publish(self, kid: str) -> None:
        self.published.append(kid)

    def retire(self, kid: str) -> None:
        self.published.remove(kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Access-token claims as Authentik issues them; an override of None drops the claim."""
        now = int(self.clock())
        claims = {
            "iss": self.url,
            "sub": "subject-operator",
            "aud": AUDIENCE,
            "azp": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "uid": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        *,
        alg: str = "RS256",
        kid: str | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with ``kid`` (default: the first key of ``alg``); ``header`` entries
        override the JOSE header (e.g. another kid, a ``jku``)."""
        key = self.keys[kid or (self.rsa_kid if alg == "RS256" else self.ec_kid)]
        headers = {"kid": key.kid, **(header or {})}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(self.claims(**claims), key.private, algorithm=alg, headers=headers)

    def sign_raw(self, payload: bytes, *, kid: str | None = None) -> str:
        """A correctly signed token whose payload is these exact bytes (e.g. not JSON)."""
        key = self.keys[kid or self.rsa_kid]
        return jwt.api_jws.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.keys[kid].jwk() for kid in list(self.published)]}

    def discovery(self) -> dict[str, Any]:
        document = {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": f"{self._server.base_url}/application/o/authorize/",
            "token_endpoint": f"{self._server.base_url}/application/o/token/",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        return {**document, **self.discovery_overrides}


class OidcServer:
    """A loopback HTTP server playing Authentik's discovery and JWKS endpoints for issuers."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._issuers: dict[str, Issuer] = {}
        self._key_indexes: dict[str, int] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def issuer(self, slug: str = AUDIENCE) -> Issuer:
        """The provider for an application slug (created on first use)."""
        if slug not in self._issuers:
            self._issuers[slug] = Issuer(self, slug, self._clock)
        return self._issuers[slug]

    def next_key_index(self, alg: str) -> int:
        index = self._key_indexes.get(alg, 0)
        self._key_indexes[alg] = index + 1
        return index

    def respond(self, path: str) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """Status, JSON document and extra headers for a GET of ``path``."""
        for issuer in list(self._issuers.values()):
            prefix = issuer.url.removeprefix(self.base_url)
            if path == f"{prefix}.well-known/openid-configuration":
                return self._count(issuer, "discovery_fetches", issuer.discovery)
            if path == f"{prefix}jwks/" and issuer.redirect_jwks_to:
                self._count(issuer, "jwks_fetches", dict)
                return 302, None, {"Location": issuer.redirect_jwks_to}
            if path == f"{prefix}jwks/":
                return self._count(issuer, "jwks_fetches", issuer.jwks)
        return 404, None, {}

    def _count(
        self, issuer: Issuer, counter: str, document: Callable[[], dict[str, Any]]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        with self._lock:
            setattr(issuer, counter, getattr(issuer, counter) + 1)
            if issuer.fail_with is not None:
                return issuer.fail_with, None, {}
            return 200, document(), {}

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler(owner: OidcServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, document, headers = owner.respond(self.path)
            body = json.dumps(document if document is not None else {"detail": "x"}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand, as an attacker would (PyJWT refuses to build some of these)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token with any secret, including a public key's PEM (algorithm confusion)."""
    unsigned = forge({**header, "alg": "HS256"}, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def oidc_server(clock: FakeClock) -> Iterator[OidcServer]:
    server = OidcServer(clock)
    yield server
    server.close()


@pytest.fixture
def issuer(oidc_server: OidcServer) -> Issuer:
    """The operator application's provider, with one RS256 and one ES256 key published."""
    return oidc_server.issuer(AUDIENCE)


@pytest.fixture
def auth_settings(issuer: Issuer) -> AuthSettings:
    return AuthSettings(issuers=(issuer.url,), audience=AUDIENCE)


@pytest.fixture(scope="session")
def http_client() -> Iterator[httpx.Client]:
    """One client for the session: creating one loads the CA bundle (~40 ms)."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def verifier(
    auth_settings: AuthSettings, clock: FakeClock, http_client: httpx.Client
) -> TokenVerifier:
    """A verifier of the operator issuer's tokens, on the test's clock."""
    return TokenVerifier(auth_settings, http_client=http_client, clock=clock)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MongoDB wire server for the session (stopping one takes ~2 s)."""
    storage: Path = tmp_path_factory.mktemp("secantus")
    with SecantusDBServer(storage_path=str(storage)) as server:
        yield server.uri


@pytest.fixture
def mongo_db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    """A fresh database on the session's server, dropped afterwards."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()
