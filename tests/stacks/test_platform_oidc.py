"""The platform's OpenID Connect applications in Authentik, and who relies on them.

OCIS signs users in with the ``ocis`` application; the run API accepts access tokens of the
``dezky-operator`` application (automation/api/auth.py), whose client id must therefore be the
audience the run API requires, and which only platform operators may use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from automation.api.auth import AuthSettings
from components import identity_platform
from stacks import platform
from stacks import secrets as names
from stacks.program import StackInputs, run
from stacks.secrets import StackSecrets
from tenants.environment import Environment, load_environment
from tests.conftest import REPO
from tests.stacks import harness

PROD = load_environment(REPO / "environments" / "prod.yaml")
DEV = load_environment(REPO / "environments" / "dev.yaml")
PROVIDER = "authentik:index/providerOauth2:ProviderOauth2"
APPLICATION = "authentik:index/application:Application"
BINDING = "authentik:index/policyBinding:PolicyBinding"


class _Recording(harness.Recording):
    """The harness's mocks, also computing what Authentik computes for an application."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.typ == APPLICATION:
            outputs["uuid"] = f"{args.name}.uuid"
        return resource_id, outputs


def _plain(name: str) -> pulumi.Input[str]:
    return f"plain-{name}"


def _record(environment: Environment) -> harness.Recording:
    inputs = StackInputs.for_platform(environment, StackSecrets(_plain))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "Recording", _Recording)
        return harness.run(lambda: run(inputs), "platform")


RECORDINGS = {"prod": _record(PROD), "dev": _record(DEV)}


@pytest.fixture(params=["prod", "dev"])
def case(request: pytest.FixtureRequest) -> Iterator[tuple[Environment, harness.Recording]]:
    yield (PROD if request.param == "prod" else DEV), RECORDINGS[request.param]


def _app(recording: harness.Recording, slug: str) -> tuple[harness.Registered, harness.Registered]:
    """(application, its provider)."""
    (app,) = [r for r in recording.of_type(APPLICATION) if r.inputs["slug"] == slug]
    (provider,) = [
        r for r in recording.of_type(PROVIDER) if f"{r.name}-id" == app.inputs["protocolProvider"]
    ]
    return app, provider


def _env(recording: harness.Recording, deployment: str) -> dict[str, Any]:
    (found,) = [
        r for r in recording.of_type("kubernetes:apps/v1:Deployment") if r.name == deployment
    ]
    (container,) = found.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _run_api_audience() -> str:
    (audience,) = [f for f in dataclasses.fields(AuthSettings) if f.name == "audience"]
    assert isinstance(audience.default, str)
    return audience.default


def test_the_operator_client_id_is_the_audience_the_run_api_requires(case: Any) -> None:
    environment, recording = case
    app, provider = _app(recording, platform.OPERATOR_OIDC_APPLICATION)
    # Authentik puts the client id into an access token's aud and azp.
    assert provider.inputs["clientId"] == _run_api_audience()
    issuer = identity_platform.issuer_url(environment.hostnames.auth, app.inputs["slug"])
    assert recording.exports["operator_oidc_issuer"] == (issuer, False)
    AuthSettings.from_csv(issuer)  # an issuer the run API accepts (https, a trailing slash)


def test_the_operator_portal_is_a_confidential_client_with_the_platform_secret(case: Any) -> None:
    environment, recording = case
    _, provider = _app(recording, platform.OPERATOR_OIDC_APPLICATION)
    secret = harness.Secret(f"plain-{names.OPERATOR_OIDC_CLIENT_SECRET}")
    assert provider.inputs["clientType"] == "confidential"
    assert provider.inputs["clientSecret"] == secret
    assert provider.inputs["allowedRedirectUris"] == [
        {
            "matching_mode": "strict",
            "url": f"https://{environment.hostnames.operator}/auth/oidc/callback",
        }
    ]
    # The portal's server side gets the same secret (from its Secret), issuer and client id.
    env = _env(recording, "operator-portal-deployment")
    assert env["NUXT_OIDC_CLIENT_ID"] == provider.inputs["clientId"]
    assert env["NUXT_OIDC_ISSUER"] == recording.exports["operator_oidc_issuer"][0]
    ref = env["NUXT_OIDC_CLIENT_SECRET"]["secretKeyRef"]
    (portal_secret,) = [
        r for r in recording.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == ref["name"]
    ]  # fmt: skip
    assert portal_secret.inputs["stringData"].value[ref["key"]] == secret.value


def test_only_platform_operators_may_use_the_operator_application(case: Any) -> None:
    _, recording = case
    operator_app, _ = _app(recording, platform.OPERATOR_OIDC_APPLICATION)
    ocis_app, _ = _app(recording, platform.OCIS_OIDC_APPLICATION)
    (group,) = [
        r for r in recording.of_type("authentik:index/group:Group")
        if r.inputs["name"] == identity_platform.OPERATORS_GROUP
    ]  # fmt: skip
    bindings = recording.of_type(BINDING)
    (binding,) = [r for r in bindings if r.inputs.get("target") == f"{operator_app.name}.uuid"]
    assert binding.inputs["group"] == f"{group.name}-id"
    assert "policy" not in binding.inputs and "user" not in binding.inputs
    assert binding.inputs.get("enabled", True) and not binding.inputs.get("negate", False)
    # Files are for every signed-in user: no binding on the ocis application.
    assert [r for r in bindings if r.inputs.get("target") == f"{ocis_app.name}.uuid"] == []


def test_ocis_points_at_the_issuer_and_client_of_its_application(case: Any) -> None:
    environment, recording = case
    env = _env(recording, "ocis-deployment")
    (app,) = [
        a for a in recording.of_type(APPLICATION)
        if _app(recording, a.inputs["slug"])[1].inputs["clientId"] == env["WEB_OIDC_CLIENT_ID"]
    ]  # fmt: skip
    _, provider = _app(recording, app.inputs["slug"])
    assert env["OCIS_OIDC_ISSUER"] == identity_platform.issuer_url(
        environment.hostnames.auth, app.inputs["slug"]
    )
    assert provider.inputs["clientId"] == "ocis-web"
    assert provider.inputs["clientType"] == "public" and "clientSecret" not in provider.inputs
    files = f"https://{environment.hostnames.files}"
    urls = [u["url"] for u in provider.inputs["allowedRedirectUris"]]
    assert {f"{files}/", f"{files}/oidc-callback.html"} <= set(urls)
    assert {u["matching_mode"] for u in provider.inputs["allowedRedirectUris"]} == {"strict"}


def test_every_application_signs_rs256_tokens_with_a_per_provider_issuer(case: Any) -> None:
    _, recording = case
    (key,) = recording.of_type("authentik:index/certificateKeyPair:CertificateKeyPair")
    assert key.inputs["keyData"] == harness.Secret(f"plain-{names.AUTHENTIK_OIDC_SIGNING_KEY}")
    assert key.inputs["certificateData"] == harness.Secret(
        f"plain-{names.AUTHENTIK_OIDC_SIGNING_CERTIFICATE}"
    )
    providers = recording.of_type(PROVIDER)
    assert len(providers) == 2
    for provider in providers:
        # Without a signing key Authentik signs HS256 with the client secret (refused).
        assert provider.inputs["signingKey"] == f"{key.name}-id", provider.name
        assert provider.inputs["issuerMode"] == "per_provider", provider.name


def test_applications_use_the_platform_flows_and_scopes(case: Any) -> None:
    _, recording = case
    flows = {r.name: r for r in recording.of_type("authentik:index/flow:Flow")}
    scopes = {
        r.inputs["scopeName"]: r
        for r in recording.of_type(
            "authentik:index/propertyMappingProviderScope:PropertyMappingProviderScope"
        )
    }
    assert set(scopes) == {"openid", "email", "profile"}
    # OCIS maps accounts by preferred_username (PROXY_USER_OIDC_CLAIM).
    assert '"preferred_username": request.user.username' in scopes["profile"].inputs["expression"]
    for provider in recording.of_type(PROVIDER):
        authorization = flows[provider.inputs["authorizationFlow"].removesuffix(".uuid")]
        invalidation = flows[provider.inputs["invalidationFlow"].removesuffix(".uuid")]
        assert authorization.inputs["designation"] == "authorization"
        assert authorization.inputs["authentication"] == "require_authenticated"
        assert invalidation.inputs["designation"] == "invalidation"
        assert provider.inputs["propertyMappings"] == [f"{s.name}-id" for s in scopes.values()]


def test_the_provider_id_reaches_the_application_as_a_number() -> None:
    assert identity_platform._primary_key("42") == 42.0
    assert (
        identity_platform._primary_key("identity-ocis-provider-id") == "identity-ocis-provider-id"
    )
