"""The platform services the platform stack declares on k3s, and what it exports for tenants."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

import pulumi
import pytest

from automation.render import DeclaredResource, render
from components.services.mongodb import MONGODB_IMAGE
from components.services.ocis import OCIS_IMAGE
from stacks import secrets as names
from stacks.program import StackInputs, run
from stacks.secrets import StackSecrets
from tenants.environment import Environment, image_problem, load_environment
from tests.conftest import REPO
from tests.stacks import harness

PROD = load_environment(REPO / "environments" / "prod.yaml")
DEV = load_environment(REPO / "environments" / "dev.yaml")
RELEASE = "kubernetes:helm.sh/v3:Release"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
EXACT_CHART_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")


def _platform(environment: Environment) -> tuple[DeclaredResource, ...]:
    return render(StackInputs.for_platform(environment)).resources


PROD_PLATFORM = _platform(PROD)
DEV_PLATFORM = _platform(DEV)


def _of(resources: tuple[DeclaredResource, ...], type_: str) -> list[DeclaredResource]:
    return [r for r in resources if r.type == type_]


def test_prod_issues_certificates_with_lets_encrypt_over_http01() -> None:
    (issuer,) = _of(PROD_PLATFORM, ISSUER)
    acme = issuer.inputs["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == PROD.services.tls.acme_email if PROD.services else False
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]
    # Every Ingress gets its certificate from the issuer: by annotation, or (mail, whose
    # certificate the host shares) from a declared Certificate naming the issuer.
    declared = {
        c.inputs["spec"]["secretName"]: c.inputs["spec"]["issuerRef"]["name"]
        for c in _of(PROD_PLATFORM, "kubernetes:cert-manager.io/v1:Certificate")
    }
    ingresses = _of(PROD_PLATFORM, "kubernetes:networking.k8s.io/v1:Ingress")
    assert ingresses
    for ingress in ingresses:
        (tls,) = ingress.inputs["spec"]["tls"]
        annotations = ingress.inputs["metadata"].get("annotations", {})
        issuer_name = declared.get(tls["secretName"]) or annotations.get(
            "cert-manager.io/cluster-issuer"
        )
        assert issuer_name == issuer.inputs["metadata"]["name"], ingress.name


def test_dev_has_no_lets_encrypt_issuer_only_a_self_signed_one() -> None:
    (issuer,) = _of(DEV_PLATFORM, ISSUER)
    assert issuer.inputs["spec"] == {"selfSigned": {}}
    assert "letsencrypt" not in json.dumps([asdict(r) for r in DEV_PLATFORM])
    assert "acme" not in json.dumps([r.inputs for r in DEV_PLATFORM if r.type == ISSUER])


def test_cert_manager_installs_its_crds_before_the_issuer() -> None:
    (release,) = [r for r in _of(PROD_PLATFORM, RELEASE) if r.inputs["chart"] == "cert-manager"]
    assert release.inputs["values"]["crds"] == {"enabled": True, "keep": True}


@pytest.mark.parametrize("resources", [PROD_PLATFORM, DEV_PLATFORM], ids=["prod", "dev"])
def test_every_helm_release_has_an_exact_chart_version(
    resources: tuple[DeclaredResource, ...],
) -> None:
    releases = _of(resources, RELEASE)
    assert {r.inputs["chart"] for r in releases} == {
        "cert-manager",
        "authentik",
        "collabora-online",
    }
    for release in releases:
        assert EXACT_CHART_VERSION.match(release.inputs["version"]), release.name
        assert release.inputs["repositoryOpts"]["repo"].startswith("https://"), release.name
        assert release.inputs["atomic"] is True


def test_the_version_check_refuses_ranges_and_latest() -> None:
    for version in ("~1.21.0", "^2026.8.0", ">=1.3", "1.x", "latest", "", "1.3"):
        assert not EXACT_CHART_VERSION.match(version)


def _images(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "image" and isinstance(v, str)]
        return found + [i for v in value.values() for i in _images(v)]
    if isinstance(value, list):
        return [i for v in value for i in _images(v)]
    return []


@pytest.mark.parametrize("resources", [PROD_PLATFORM, DEV_PLATFORM], ids=["prod", "dev"])
def test_every_image_is_pinned(resources: tuple[DeclaredResource, ...]) -> None:
    images = [i for r in resources if r.type.startswith("kubernetes:") for i in _images(r.inputs)]
    assert OCIS_IMAGE in images
    assert MONGODB_IMAGE in images
    assert len(images) == 5  # OCIS, MongoDB, portal, operator portal, platform-api
    assert [i for i in images if image_problem(i)] == []


@pytest.mark.parametrize(
    "image",
    ["registry.dezky.eu/dezky/portal:latest", "registry.dezky.eu/dezky/portal", "portal:1.0.0",
     "registry.dezky.eu/dezky/portal:1", "registry.dezky.eu/dezky/portal:main"],
)  # fmt: skip
def test_the_pin_check_refuses_moving_references(image: str) -> None:
    assert image_problem(image)


def test_digests_pin_any_tag() -> None:
    assert image_problem("ghcr.io/x/y:main@sha256:" + "a" * 64) is None


def _plain_secret(name: str) -> pulumi.Input[str]:
    """A secret as a caller might wrongly pass it: plain text, not marked secret."""
    return f"plain-text-{name}-value"


# Secrets the platform stack must look up (each then checked for plain-text leaks below).
PLATFORM_SECRET_NAMES = {
    names.KUBECONFIG,
    names.AUTHENTIK_TOKEN,
    names.AUTHENTIK_SECRET_KEY,
    names.AUTHENTIK_POSTGRESQL_PASSWORD,
    names.COLLABORA_ADMIN_PASSWORD,
    names.MONGODB_ROOT_PASSWORD,
    names.OPERATOR_OIDC_CLIENT_SECRET,
    names.AUTHENTIK_OIDC_SIGNING_KEY,
    names.AUTHENTIK_OIDC_SIGNING_CERTIFICATE,
}


@pytest.mark.parametrize("environment", [PROD, DEV], ids=["prod", "dev"])
def test_no_secret_value_appears_in_plain_text(environment: Environment) -> None:
    looked_up: list[str] = []

    def plain(name: str) -> pulumi.Input[str]:
        looked_up.append(name)
        return _plain_secret(name)

    inputs = StackInputs.for_platform(environment, StackSecrets(plain))
    recording = harness.run(lambda: run(inputs), "platform")
    assert set(looked_up) >= PLATFORM_SECRET_NAMES
    rendered = json.dumps([asdict(r) for r in render(inputs).resources])
    assert "plain-text-" not in rendered  # the program marks every secret it passes on
    leaked = [
        r.name
        for r in recording.resources
        if "plain-text-" in json.dumps(r.inputs, default=lambda s: "<secret>")
    ]
    assert leaked == []
    value, secret = recording.exports["kubeconfig"]
    assert value == f"plain-text-{names.KUBECONFIG}-value" and secret


def test_the_secrets_reach_the_objects_that_use_them() -> None:
    inputs = StackInputs.for_platform(PROD, StackSecrets(_plain_secret))
    recording = harness.run(lambda: run(inputs), "platform")
    data = {
        r.inputs["metadata"]["name"]: r.inputs["stringData"].value
        for r in recording.of_type("kubernetes:core/v1:Secret")
    }
    assert data["authentik-credentials"] == {
        "secret-key": f"plain-text-{names.AUTHENTIK_SECRET_KEY}-value",
        "postgresql-password": f"plain-text-{names.AUTHENTIK_POSTGRESQL_PASSWORD}-value",
        "bootstrap-token": f"plain-text-{names.AUTHENTIK_TOKEN}-value",
    }
    password = f"plain-text-{names.MONGODB_ROOT_PASSWORD}-value"
    assert data["mongodb-credentials"] == {"username": "root", "password": password}
    assert data["platform-api-secrets"] == {
        "mongodb-uri": f"mongodb://root:{password}@mongodb.platform.svc.cluster.local:27017"
        "/dezky?authSource=admin"
    }
    assert data["operator-portal-secrets"] == {
        "nuxt-oidc-client-secret": f"plain-text-{names.OPERATOR_OIDC_CLIENT_SECRET}-value"
    }
    assert data["ocis-object-storage"] == {
        "access-key": f"plain-text-{names.OBJECT_STORAGE_ACCESS_KEY}-value",
        "secret-key": f"plain-text-{names.OBJECT_STORAGE_SECRET_KEY}-value",
    }
    # Every secretKeyRef in a Deployment or in Helm values names a key its Secret has.
    refs = _secret_refs([r.inputs for r in recording.resources])
    assert refs
    for secret, key in refs:
        assert key in data[secret], (secret, key)


def _secret_refs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        ref = value.get("secretKeyRef")
        found = [(ref["name"], ref["key"])] if isinstance(ref, dict) else []
        return found + [x for v in value.values() for x in _secret_refs(v)]
    if isinstance(value, list):
        return [x for v in value for x in _secret_refs(v)]
    return []


def test_platform_api_reads_mongodb_uri_from_its_secret() -> None:
    (api,) = [r for r in PROD_PLATFORM if r.name == "platform-api-deployment"]
    (container,) = api.inputs["spec"]["template"]["spec"]["containers"]
    assert {"name": "MONGODB_URI", "valueFrom": {"secretKeyRef": {
        "name": "platform-api-secrets", "key": "mongodb-uri"}}} in container["env"]  # fmt: skip


def test_ocis_keeps_files_in_hetzner_object_storage_in_prod_only() -> None:
    def env(resources: tuple[DeclaredResource, ...]) -> dict[str, Any]:
        (ocis,) = [r for r in resources if r.name == "ocis-deployment"]
        (container,) = ocis.inputs["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}

    prod = env(PROD_PLATFORM)
    assert prod["STORAGE_USERS_DRIVER"] == "s3ng"
    assert prod["STORAGE_USERS_S3NG_ENDPOINT"] == "https://fsn1.your-objectstorage.com"
    assert prod["STORAGE_USERS_S3NG_REGION"] == "fsn1"
    assert prod["STORAGE_USERS_S3NG_SECRET_KEY"] == {
        "secretKeyRef": {"name": "ocis-object-storage", "key": "secret-key"}
    }
    assert prod["OCIS_URL"] == "https://files.dezky.eu"
    assert prod["OCIS_INSECURE"] == "false"
    dev = env(DEV_PLATFORM)
    assert not any(name.startswith("STORAGE_USERS") for name in dev)
    assert dev["OCIS_INSECURE"] == "true"  # self-signed certificates in dev


def test_ocis_and_mongodb_volumes_are_protected_like_customer_data() -> None:
    claims = _of(PROD_PLATFORM, "kubernetes:core/v1:PersistentVolumeClaim")
    assert {c.name for c in claims} == {"ocis-config", "ocis-data", "mongodb-data"}
    assert all(c.protect and c.retain_on_delete for c in claims)


@pytest.mark.parametrize(
    ("environment", "domain"), [(PROD, "dezky.eu"), (DEV, "dezky.local")], ids=["prod", "dev"]
)
def test_services_are_reached_under_the_base_domain(environment: Environment, domain: str) -> None:
    resources = _platform(environment)
    hosts = {
        rule["host"]
        for r in _of(resources, "kubernetes:networking.k8s.io/v1:Ingress")
        for rule in r.inputs["spec"]["rules"]
    }
    # Stalwart's front door needs the host's address: prod has it, dev does not.
    mail = ("mail",) if environment.hetzner else ()
    assert hosts == {f"{h}.{domain}" for h in ("files", "portal", "operator", "api", *mail)}
    values = {r.inputs["chart"]: r.inputs["values"] for r in _of(resources, RELEASE)}
    assert values["authentik"]["server"]["ingress"]["hosts"] == [f"auth.{domain}"]
    assert values["collabora-online"]["ingress"]["hosts"][0]["host"] == f"office.{domain}"


def test_every_kubernetes_object_goes_through_the_provider_built_from_the_kubeconfig() -> None:
    recording = harness.run(lambda: run(StackInputs.for_platform(PROD)), "platform")
    provider = recording.named("k3s")
    assert provider.inputs["kubeconfig"] == harness.Secret(f"offline:{names.KUBECONFIG}")
    objects = recording.of_type("kubernetes:")
    assert len(objects) > 20
    for resource in objects:
        assert harness.provider_of(resource) == ("pulumi:providers:kubernetes", "k3s"), resource


def test_platform_exports_what_tenant_stacks_read() -> None:
    recording = harness.run(lambda: run(StackInputs.for_platform(PROD)), "platform")
    exports = recording.exports
    assert exports["authentik_url"] == ("https://auth.dezky.eu", False)
    assert exports["ocis_url"] == ("https://files.dezky.eu", False)
    assert exports["stalwart_jmap_url"] == ("https://mail.dezky.eu", False)
    assert exports["kubeconfig"] == (f"offline:{names.KUBECONFIG}", True)
    assert exports["operator_oidc_issuer"] == (
        "https://auth.dezky.eu/application/o/dezky-operator/",
        False,
    )
