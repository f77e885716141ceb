"""Token verification against a real JWKS over HTTP on loopback, and authorization from a real
MongoDB wire server: what the run API lets in, and what it keeps out."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.database import Database

from automation.api.auth import (
    AuthError,
    AuthSettings,
    KeysUnavailableError,
    Principal,
    TokenVerifier,
    bearer_token,
    load_principal,
)
from tests.api.conftest import (
    AUDIENCE,
    FakeClock,
    Issuer,
    OidcServer,
    b64url,
    forge,
    forge_hs256,
)


def rejected(verifier: TokenVerifier, token: Any, reason: str) -> AuthError:
    """Assert the token is refused for ``reason``, with the token kept out of the message."""
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert caught.value.reason == reason
    if isinstance(token, str) and token:
        assert token not in str(caught.value)
        assert token.split(".")[0] not in str(caught.value)
    return caught.value


# Accepted tokens


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_an_access_token_of_the_configured_issuer_is_accepted(
    verifier: TokenVerifier, issuer: Issuer, alg: str
) -> None:
    token = issuer.token(alg=alg, sub="user-42")
    claims = verifier.verify(token)
    assert claims.subject == "user-42"
    assert claims.issuer == issuer.url
    assert claims.audience == (AUDIENCE,)
    assert claims.azp == AUDIENCE
    assert claims.expires == int(issuer.clock()) + 3600
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)


def test_the_audience_may_be_a_list_that_includes_the_operator(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    claims = verifier.verify(issuer.token(aud=["dezky-portal", AUDIENCE]))
    assert claims.audience == ("dezky-portal", AUDIENCE)


def test_keys_are_fetched_once_and_cached(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    for _ in range(20):
        verifier.verify(issuer.token())
        verifier.verify(issuer.token(alg="ES256"))
        clock.advance(10)
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)
    clock.advance(100)  # 300 s after the first fetch: the cached set has expired
    verifier.verify(issuer.token())
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 2)


def test_an_injected_client_is_used_and_left_open(
    auth_settings: AuthSettings, issuer: Issuer, clock: FakeClock
) -> None:
    with httpx.Client() as client:
        with TokenVerifier(auth_settings, http_client=client, clock=clock) as verifier:
            assert verifier.verify(issuer.token()).subject == "subject-operator"
        assert not client.is_closed  # its owner closes it
    assert issuer.jwks_fetches == 1


def test_two_issuers_are_accepted_and_each_keeps_its_own_keys(
    oidc_server: OidcServer, issuer: Issuer, clock: FakeClock
) -> None:
    other = oidc_server.issuer("dezky-ci")
    settings = AuthSettings.from_csv(f"{issuer.url}, {other.url}")
    with TokenVerifier(settings, clock=clock) as verifier:
        assert verifier.verify(issuer.token(sub="a")).issuer == issuer.url
        assert verifier.verify(other.token(sub="b", alg="ES256")).issuer == other.url
        assert (issuer.jwks_fetches, other.jwks_fetches) == (1, 1)
        # The key must belong to the issuer the token names (RFC 8725 §3.8).
        rejected(verifier, issuer.token(iss=other.url), "unknown key id")


# Algorithms


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"x"])
def test_unsigned_tokens_are_refused_before_any_fetch(
    verifier: TokenVerifier, issuer: Issuer, alg: str, signature: bytes
) -> None:
    token = forge({"alg": alg, "kid": issuer.rsa_kid}, issuer.claims(), signature)
    rejected(verifier, token, "algorithm not allowed")
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (0, 0)


@pytest.mark.parametrize("secret", [b"a-shared-client-secret-of-32-bytes!", b"secret"])
def test_hs256_with_a_shared_secret_is_refused(
    verifier: TokenVerifier, issuer: Issuer, secret: bytes
) -> None:
    token = forge_hs256({"kid": issuer.rsa_kid}, issuer.claims(), secret)
    rejected(verifier, token, "algorithm not allowed")
    assert issuer.jwks_fetches == 0


def test_hs256_keyed_with_the_public_key_is_refused(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    """The classic confusion: the RSA public key's bytes used as the HMAC secret."""
    verifier.verify(issuer.token())  # the keys are cached, so only the algorithm can stop it
    public = issuer.keys[issuer.rsa_kid].public_pem()
    for header in ({"kid": issuer.rsa_kid}, {"kid": issuer.rsa_kid, "typ": "JWT"}):
        rejected(verifier, forge_hs256(header, issuer.claims(), public), "algorithm not allowed")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES384", "EdDSA", "HS512", ""])
def test_other_algorithms_are_refused(verifier: TokenVerifier, issuer: Issuer, alg: str) -> None:
    token = forge({"alg": alg, "kid": issuer.rsa_kid}, issuer.claims(), b"sig")
    rejected(verifier, token, "algorithm not allowed")
    assert issuer.jwks_fetches == 0


def test_a_key_is_used_only_with_its_own_algorithm(verifier: TokenVerifier, issuer: Issuer) -> None:
    """An ES256 token naming the RSA key's id: the key type must match the algorithm."""
    token = issuer.token(alg="ES256", header={"kid": issuer.rsa_kid})
    rejected(verifier, token, "key does not match the algorithm")


def test_a_token_with_a_foreign_signature_is_refused(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    """Right kid and algorithm, signed by a key the issuer never published."""
    stranger = issuer.add_key("RS256", publish=False)
    token = issuer.token(kid=stranger, header={"kid": issuer.rsa_kid})
    rejected(verifier, token, "bad signature")


def test_a_tampered_payload_is_refused(verifier: TokenVerifier, issuer: Issuer) -> None:
    head, _, signature = issuer.token().split(".")
    body = b64url(json.dumps(issuer.claims(sub="subject-admin")).encode())
    rejected(verifier, f"{head}.{body}.{signature}", "bad signature")


def test_keys_shorter_than_2048_bits_are_refused(verifier: TokenVerifier, issuer: Issuer) -> None:
    weak = issuer.add_key("RS256", bits=1024)
    rejected(verifier, issuer.token(kid=weak), "signing key refused")


# Issuers


def test_an_unknown_issuer_is_refused_without_contacting_anyone(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    token = issuer.token(iss="https://auth.example.org/application/o/dezky-operator/")
    rejected(verifier, token, "issuer not accepted")
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (0, 0)


def test_an_unconfigured_issuer_with_its_own_keys_is_never_fetched(
    verifier: TokenVerifier, issuer: Issuer, oidc_server: OidcServer
) -> None:
    rogue = oidc_server.issuer("rogue-app")
    rejected(verifier, rogue.token(), "issuer not accepted")
    assert (rogue.discovery_fetches, rogue.jwks_fetches) == (0, 0)


@pytest.mark.parametrize("issuer_claim", [None, 42, ["x"], ""])
def test_a_missing_or_malformed_issuer_is_refused(
    verifier: TokenVerifier, issuer: Issuer, issuer_claim: Any
) -> None:
    token = forge({"alg": "RS256", "kid": issuer.rsa_kid}, issuer.claims(iss=issuer_claim))
    rejected(verifier, token, "issuer not accepted")


def test_the_issuer_must_match_exactly(verifier: TokenVerifier, issuer: Issuer) -> None:
    """Authentik's issuer ends with a slash; without it, it is another string."""
    rejected(verifier, issuer.token(iss=issuer.url.rstrip("/")), "issuer not accepted")


@pytest.mark.parametrize("key", ["jku", "x5u"])
def test_key_urls_in_the_header_are_never_followed(
    verifier: TokenVerifier, issuer: Issuer, oidc_server: OidcServer, key: str
) -> None:
    rogue = oidc_server.issuer("rogue-app")
    header = {"kid": rogue.rsa_kid, key: rogue.jwks_url}
    token = rogue.token(header=header, iss=issuer.url)
    rejected(verifier, token, "unknown key id")
    assert (rogue.discovery_fetches, rogue.jwks_fetches) == (0, 0)


def test_a_discovery_document_for_another_issuer_is_refused(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    issuer.discovery_overrides = {"issuer": "https://auth.example.org/application/o/x/"}
    rejected(verifier, issuer.token(), "signing keys unavailable")
    assert issuer.jwks_fetches == 0


def test_a_jwks_uri_on_another_host_is_never_fetched(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    elsewhere = OidcServer(clock)
    try:
        foreign = elsewhere.issuer(AUDIENCE)
        issuer.discovery_overrides = {"jwks_uri": foreign.jwks_url}
        token = foreign.token(iss=issuer.url)
        with pytest.raises(KeysUnavailableError):
            verifier.verify(token)
        assert foreign.jwks_fetches == 0
    finally:
        elsewhere.close()


# Audience and token kind


def test_a_token_for_another_application_is_refused(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    rejected(
        verifier, issuer.token(aud="dezky-portal", azp="dezky-portal"), "audience not accepted"
    )


def test_an_id_token_without_azp_is_refused(verifier: TokenVerifier, issuer: Issuer) -> None:
    rejected(verifier, issuer.token(azp=None), "missing claim azp")


def test_an_access_token_of_another_client_is_refused(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    """aud lists the operator, but the token was issued to the portal (azp)."""
    token = issuer.token(aud=[AUDIENCE, "dezky-portal"], azp="dezky-portal")
    rejected(verifier, token, "not an access token for this API")


@pytest.mark.parametrize("claim", ["sub", "aud", "exp"])
def test_required_claims_must_be_present(
    verifier: TokenVerifier, issuer: Issuer, claim: str
) -> None:
    dropped: dict[str, Any] = {claim: None}
    rejected(verifier, issuer.token(**dropped), f"missing claim {claim}")


@pytest.mark.parametrize("subject", ["", 7])
def test_the_subject_must_be_a_non_empty_string(
    verifier: TokenVerifier, issuer: Issuer, subject: Any
) -> None:
    rejected(verifier, issuer.token(sub=subject), "malformed claim sub")


# Time


@pytest.mark.parametrize(("offset", "accepted"), [(-61, False), (-60, False), (-59, True)])
def test_expiry_allows_the_leeway_and_no_more(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock, offset: int, accepted: bool
) -> None:
    token = issuer.token(exp=clock() + offset)
    if accepted:
        verifier.verify(token)
    else:
        rejected(verifier, token, "token expired")


def test_a_verified_token_is_reused_for_a_minute_at_most(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    token = issuer.token(exp=clock() + 3600)
    assert verifier.already_verified(token) is None
    claims = verifier.verify(token)
    clock.advance(59)
    assert verifier.already_verified(token) == claims
    clock.advance(1)
    assert verifier.already_verified(token) is None
    assert verifier.verify(token) == claims  # verified again, in full


def test_a_reused_token_still_expires_on_time(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    token = issuer.token(exp=clock() + 10)
    verifier.verify(token)
    clock.advance(69)  # exp + 59 s: inside the leeway
    assert verifier.verify(token).subject
    clock.advance(1)
    assert verifier.already_verified(token) is None
    rejected(verifier, token, "token expired")


def test_refused_tokens_are_never_remembered(verifier: TokenVerifier, issuer: Issuer) -> None:
    token = issuer.token(aud="someone-else")
    rejected(verifier, token, "audience not accepted")
    assert verifier.already_verified(token) is None
    rejected(verifier, token, "audience not accepted")


@pytest.mark.parametrize(("offset", "accepted"), [(61, False), (59, True), (-10, True)])
def test_not_before_allows_the_leeway_and_no_more(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock, offset: int, accepted: bool
) -> None:
    token = issuer.token(nbf=clock() + offset)
    if accepted:
        verifier.verify(token)
    else:
        rejected(verifier, token, "token not yet valid")


def test_issued_at_is_optional_but_not_in_the_future(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    verifier.verify(issuer.token(iat=None))
    rejected(verifier, issuer.token(iat=clock() + 120), "token issued in the future")


def test_a_token_expires_as_the_clock_moves(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    token = issuer.token(exp=clock() + 100)
    verifier.verify(token)
    clock.advance(161)
    rejected(verifier, token, "token expired")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp": NaN}',
        b'{"exp": Infinity}',
        b'{"exp": "tomorrow"}',
        b'{"exp": true}',
        b'{"exp": 1e999}',
    ],
)
def test_malformed_times_are_refused(
    verifier: TokenVerifier, issuer: Issuer, payload: bytes
) -> None:
    claims = issuer.claims()
    body = payload[:-1] + b", " + _json_members(claims, without="exp") + b"}"
    with pytest.raises(AuthError) as caught:
        verifier.verify(issuer.sign_raw(body))
    assert caught.value.reason == "malformed claim exp"


def _json_members(claims: dict[str, Any], *, without: str) -> bytes:
    rest = {name: value for name, value in claims.items() if name != without}
    return json.dumps(rest).encode()[1:-1]


# Unknown key ids, rotation, outages


def test_a_flood_of_unknown_key_ids_fetches_at_most_once_per_cool_down(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    verifier.verify(issuer.token())
    assert issuer.jwks_fetches == 1
    for _ in range(50):
        rejected(verifier, issuer.token(header={"kid": uuid.uuid4().hex}), "unknown key id")
    assert issuer.jwks_fetches == 1  # still cooling down from the first fetch
    clock.advance(30)
    for _ in range(50):
        rejected(verifier, issuer.token(header={"kid": uuid.uuid4().hex}), "unknown key id")
        clock.advance(0.2)  # 10 s in all: still within the new cool-down
    assert issuer.jwks_fetches == 2
    verifier.verify(issuer.token())  # the known key keeps working throughout
    assert issuer.discovery_fetches == 1


def test_a_flood_on_a_cold_cache_fetches_once(verifier: TokenVerifier, issuer: Issuer) -> None:
    for _ in range(50):
        rejected(verifier, issuer.token(header={"kid": uuid.uuid4().hex}), "unknown key id")
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)


def test_concurrent_requests_on_a_cold_cache_share_one_fetch(
    verifier: TokenVerifier, issuer: Issuer
) -> None:
    tokens = [issuer.token(sub=f"user-{n}", alg=("RS256", "ES256")[n % 2]) for n in range(32)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        subjects = list(pool.map(lambda token: verifier.verify(token).subject, tokens))
    assert subjects == [f"user-{n}" for n in range(32)]
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)


def test_a_rotated_key_is_accepted_after_the_cool_down(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    verifier.verify(issuer.token())
    new_kid = issuer.add_key("RS256")
    clock.advance(5)
    rejected(verifier, issuer.token(kid=new_kid), "unknown key id")  # within the cool-down
    clock.advance(25)
    assert verifier.verify(issuer.token(kid=new_kid)).subject == "subject-operator"
    assert issuer.jwks_fetches == 2


def test_a_rotated_key_is_picked_up_when_the_cache_expires(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    old_token = issuer.token(exp=clock() + 7200)
    verifier.verify(old_token)
    new_kid = issuer.add_key("ES256")
    issuer.retire(issuer.rsa_kid)
    clock.advance(300)
    verifier.verify(issuer.token(alg="ES256", kid=new_kid))
    # The retired key went with the refresh, and its tokens with it.
    rejected(verifier, old_token, "unknown key id")
    assert issuer.jwks_fetches == 2


def test_an_unreachable_issuer_is_reported_as_unavailable(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    issuer.fail_with = 503
    for _ in range(10):
        with pytest.raises(KeysUnavailableError) as caught:
            verifier.verify(issuer.token())
        assert isinstance(caught.value, AuthError)
    assert issuer.discovery_fetches == 1  # the cool-down also spares a struggling issuer
    issuer.fail_with = None
    clock.advance(30)
    verifier.verify(issuer.token())
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (2, 1)


def test_cached_keys_outlive_an_outage(
    verifier: TokenVerifier, issuer: Issuer, clock: FakeClock
) -> None:
    verifier.verify(issuer.token())
    issuer.fail_with = 500
    clock.advance(301)
    verifier.verify(issuer.token())  # refresh failed: the keys it had still verify
    assert issuer.jwks_fetches == 2
    issuer.fail_with = None
    clock.advance(30)
    verifier.verify(issuer.token())
    assert issuer.jwks_fetches == 3


def test_nothing_listens_at_the_issuer(clock: FakeClock) -> None:
    settings = AuthSettings(issuers=("http://127.0.0.1:9/application/o/x/",), http_timeout=1)
    token = forge({"alg": "RS256", "kid": "k"}, {"iss": settings.issuers[0]}, b"s")
    with TokenVerifier(settings, clock=clock) as verifier, pytest.raises(KeysUnavailableError):
        verifier.verify(token)


def test_a_redirected_key_set_is_not_followed(
    verifier: TokenVerifier, issuer: Issuer, oidc_server: OidcServer
) -> None:
    """Same host, so only the refusal to follow redirects keeps the rogue keys out."""
    rogue = oidc_server.issuer("rogue-app")
    issuer.redirect_jwks_to = rogue.jwks_url
    with pytest.raises(KeysUnavailableError):
        verifier.verify(rogue.token(iss=issuer.url))
    assert (issuer.jwks_fetches, rogue.jwks_fetches) == (1, 0)


def test_an_oversized_key_set_is_refused(verifier: TokenVerifier, issuer: Issuer) -> None:
    original = issuer.jwks
    issuer.jwks = lambda: {**original(), "padding": "x" * 2_000_000}  # type: ignore[method-assign]
    with pytest.raises(KeysUnavailableError):
        verifier.verify(issuer.token())


def test_unusable_keys_in_the_set_are_skipped(
    verifier: TokenVerifier, issuer: Issuer, oidc_server: OidcServer
) -> None:
    broken = {"kid": "broken", "kty": "RSA", "n": "!!", "e": "AQAB"}
    encryption = {**issuer.keys[issuer.rsa_kid].jwk(), "kid": "enc", "use": "enc"}
    secret = {"kid": "oct", "kty": "oct", "k": b64url(b"s" * 32)}
    original = issuer.jwks
    issuer.jwks = lambda: {"keys": [broken, encryption, secret, "junk", *original()["keys"]]}  # type: ignore[method-assign]
    verifier.verify(issuer.token())
    for kid in ("broken", "enc", "oct"):
        rejected(verifier, issuer.token(header={"kid": kid}), "unknown key id")
    oct_token = forge_hs256({"kid": "oct"}, issuer.claims(), b"s" * 32)
    rejected(verifier, oct_token, "algorithm not allowed")


# Malformed input


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "e30.e30.",
        b64url(b"[]") + ".e30.",
        b64url(b'{"alg":"RS256"}') + "." + b64url(b"[1]") + ".",
        b64url(b'{"alg":"RS256"') + ".e30.",
        "\u00e9\u00e9.\u00e9.\u00e9",
        "x" * 100_000,
    ],
)
def test_malformed_tokens_are_refused_cleanly(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert caught.value.reason in {"malformed token", "algorithm not allowed"}


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", ["a.b.c"]])
def test_a_token_that_is_not_text_is_refused(verifier: TokenVerifier, token: Any) -> None:
    rejected(verifier, token, "malformed token")


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256"},
        {"alg": "RS256", "kid": 7},
        {"alg": "RS256", "kid": ""},
        {"alg": "RS256", "kid": "k" * 300},
        {"alg": ["RS256"], "kid": "k"},
        {"alg": "RS256", "kid": "k", "crit": ["exp"]},
    ],
)
def test_malformed_headers_are_refused_cleanly(
    verifier: TokenVerifier, issuer: Issuer, header: dict[str, Any]
) -> None:
    with pytest.raises(AuthError) as caught:
        verifier.verify(forge(header, issuer.claims(), b"sig"))
    assert caught.value.reason in {
        "malformed token",
        "algorithm not allowed",
        "missing or malformed key id",
    }


@pytest.mark.parametrize("payload", [b"[]", b"not json", b'{"iss": ', b"null"])
def test_signed_payloads_that_are_not_claims_are_refused(
    verifier: TokenVerifier, issuer: Issuer, payload: bytes
) -> None:
    rejected(verifier, issuer.sign_raw(payload), "malformed token")


# The Authorization header


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_bearer_header_yields_its_token(issuer: Issuer, scheme: str) -> None:
    token = issuer.token()
    assert bearer_token(f"{scheme} {token}") == token


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token a.b.c",
        "Bearer a.b.c extra",
        "Bearer\ta.b.c",
        "Bearer a.b.c\n",
        " Bearer a.b.c",
        "Bearer a,b.c",
        "Bearer " + "x" * 20_000,
    ],
)
def test_malformed_authorization_headers_are_refused(value: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(value)
    assert "x" * 100 not in caught.value.reason


# Settings


def test_issuers_are_parsed_from_a_comma_separated_list() -> None:
    settings = AuthSettings.from_csv(
        " https://auth.example.org/application/o/ops/ ,,https://auth.example.org/application/o/ci/,"
        "https://auth.example.org/application/o/ops/",
        leeway_seconds=30,
    )
    assert settings.issuers == (
        "https://auth.example.org/application/o/ops/",
        "https://auth.example.org/application/o/ci/",
    )
    assert (settings.audience, settings.leeway_seconds) == (AUDIENCE, 30)


@pytest.mark.parametrize(
    "issuers",
    [
        "",
        " , ",
        "http://auth.example.org/application/o/ops/",
        "ftp://auth.example.org/",
        "https://auth.example.org/?x=1",
        "https://user:pass@auth.example.org/",
        "auth.example.org",
    ],
)
def test_unsafe_or_empty_issuer_lists_are_refused(issuers: str) -> None:
    with pytest.raises(ValueError):
        AuthSettings.from_csv(issuers)


@pytest.mark.parametrize(
    "options",
    [{"leeway_seconds": 600}, {"unknown_kid_cooldown_seconds": 0}, {"audience": ""}],
)
def test_unsafe_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AuthSettings.from_csv("https://auth.example.org/application/o/ops/", **options)


# Authorization from the users collection

TENANT_A, TENANT_B = ObjectId(), ObjectId()


@pytest.fixture
def users(mongo_db: Database[dict[str, Any]]) -> Any:
    collection = mongo_db["users"]
    collection.insert_many(
        [
            {
                "authentikSubjectId": "subject-admin",
                "platformAdmin": True,
                "tenantIds": [],
                "email": "admin@dezky.example",
            },
            {
                "authentikSubjectId": "subject-member",
                "platformAdmin": False,
                "tenantIds": [TENANT_A, str(ObjectId())],
                "name": "Mia Member",
                "email": "mia@tenant-a.example",
            },
            {"authentikSubjectId": "subject-string-admin", "platformAdmin": "true"},
            {"authentikSubjectId": "subject-odd-ids", "tenantIds": str(TENANT_A)},
            {"authentikSubjectId": "subject-twice", "platformAdmin": True},
            {"authentikSubjectId": "subject-twice", "platformAdmin": False},
        ]
    )
    return collection


def test_a_platform_admin_may_do_anything_anywhere(users: Any) -> None:
    admin = load_principal(users, "subject-admin")
    assert admin is not None
    assert admin.platform_admin and admin.email == "admin@dezky.example"
    for tenant in (str(TENANT_A), str(TENANT_B), None):
        assert admin.can_read(tenant)
        for operation in ("preview", "up", "refresh", "drift", "destroy"):
            assert admin.can_trigger(tenant, operation)


def test_a_member_reads_and_previews_only_their_tenant(users: Any) -> None:
    member = load_principal(users, "subject-member")
    assert member is not None
    assert not member.platform_admin
    assert str(TENANT_A) in member.tenant_ids  # an ObjectId in MongoDB, text here
    assert (member.display_name, member.email) == ("Mia Member", "mia@tenant-a.example")
    assert member.can_read(str(TENANT_A))
    assert member.can_trigger(str(TENANT_A), "preview")
    for operation in ("up", "refresh", "drift", "destroy"):
        assert not member.can_trigger(str(TENANT_A), operation)
    assert not member.can_read(str(TENANT_B))
    assert not member.can_trigger(str(TENANT_B), "preview")
    assert not member.can_read(None)  # platform stacks are for admins
    assert not member.can_trigger(None, "preview")


def test_tenant_ids_stored_as_strings_match_too(users: Any) -> None:
    users.insert_one({"authentikSubjectId": "subject-strings", "tenantIds": [str(TENANT_B)]})
    member = load_principal(users, "subject-strings")
    assert member is not None and member.can_trigger(str(TENANT_B), "preview")


def test_an_unknown_subject_has_no_principal(users: Any) -> None:
    assert load_principal(users, "subject-nobody") is None
    assert load_principal(users, "") is None


def test_only_a_real_true_makes_an_admin(users: Any) -> None:
    principal = load_principal(users, "subject-string-admin")
    assert principal == Principal(
        subject="subject-string-admin",
        user_id=principal.user_id if principal else "",
        platform_admin=False,
        tenant_ids=frozenset(),
    )


def test_tenant_ids_that_are_not_a_list_grant_nothing(users: Any) -> None:
    principal = load_principal(users, "subject-odd-ids")
    assert principal is not None and principal.tenant_ids == frozenset()


def test_a_subject_shared_by_two_users_is_refused(users: Any) -> None:
    assert load_principal(users, "subject-twice") is None


def test_a_query_object_as_subject_matches_nobody(users: Any) -> None:
    assert load_principal(users, {"$ne": None}) is None  # type: ignore[arg-type]
