"""mail.<base>: the platform routes Stalwart's JMAP endpoint through the ingress to the host."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pydantic
import pytest

from automation.render import DeclaredResource, render
from components.services.stalwart import (
    MAIL_TLS_SECRET,
    STALWART_HTTP_PORT,
    StalwartFrontDoorArgs,
    endpoint_problem,
)
from stacks.program import StackInputs, run
from tenants.environment import Environment, load_environment
from tests.conftest import REPO
from tests.golden import test_upstream_schemas as upstream
from tests.stacks import harness

PROD = load_environment(REPO / "environments" / "prod.yaml")
DEV = load_environment(REPO / "environments" / "dev.yaml")
NAMESPACE = MAIL_TLS_SECRET[0]
SERVICE = "kubernetes:core/v1:Service"
SLICE = "kubernetes:discovery.k8s.io/v1:EndpointSlice"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"


def _with_mail_host(environment: Environment, address: str) -> Environment:
    assert environment.services is not None
    services = {**environment.services.model_dump(), "mail_host": address}
    return Environment.model_validate({**environment.model_dump(), "services": services})


def _platform(environment: Environment) -> tuple[DeclaredResource, ...]:
    return render(StackInputs.for_platform(environment)).resources


PROD_PLATFORM = _platform(PROD)


def _in_mail(resources: tuple[DeclaredResource, ...], type_: str) -> list[DeclaredResource]:
    return [
        r
        for r in resources
        if r.type == type_ and r.inputs["metadata"].get("namespace") == NAMESPACE
    ]


def _one(resources: tuple[DeclaredResource, ...], type_: str) -> dict[str, Any]:
    (found,) = _in_mail(resources, type_)
    return found.inputs


def _route(resources: tuple[DeclaredResource, ...]) -> tuple[str, str, list[str], int]:
    """(ingress host, backend service, the service's endpoint addresses, their port)."""
    ingress = _one(resources, INGRESS)
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = _one(resources, SERVICE)
    assert service["metadata"]["name"] == backend["name"]
    (service_port,) = [
        p for p in service["spec"]["ports"] if p["port"] == backend["port"]["number"]
    ]
    endpoints = _one(resources, SLICE)
    assert endpoints["metadata"]["labels"]["kubernetes.io/service-name"] == backend["name"]
    (port,) = [p for p in endpoints["ports"] if p["name"] == service_port["name"]]
    addresses = [a for e in endpoints["endpoints"] for a in e["addresses"]]
    return rule["host"], backend["name"], addresses, int(port["port"])


def test_prod_routes_mail_to_the_hosts_ipv4_on_stalwarts_http_port() -> None:
    assert PROD.hetzner is not None
    host, service, addresses, port = _route(PROD_PLATFORM)
    assert host == "mail.dezky.eu"
    assert service == "stalwart"
    assert addresses == [PROD.hetzner.ipv4]
    assert port == STALWART_HTTP_PORT == 8080
    assert _one(PROD_PLATFORM, SLICE)["addressType"] == "IPv4"


def test_the_service_has_no_selector_so_only_the_declared_slice_backs_it() -> None:
    service = _one(PROD_PLATFORM, SERVICE)
    assert "selector" not in service["spec"]
    assert service["metadata"]["name"] == "stalwart"


def test_the_slice_belongs_to_the_service_and_not_to_the_endpoint_controllers() -> None:
    service = _one(PROD_PLATFORM, SERVICE)
    labels = _one(PROD_PLATFORM, SLICE)["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == service["metadata"]["name"]
    assert labels["endpointslice.kubernetes.io/managed-by"] not in (
        "endpointslice-controller.k8s.io",
        "endpointslicemirroring-controller.k8s.io",
    )


def test_the_host_endpoint_is_stated_ready_since_traefik_drops_unknown_readiness() -> None:
    # Traefik (EndpointServing) skips an endpoint whose `ready` is unset; nothing probes a host.
    (endpoint,) = _one(PROD_PLATFORM, SLICE)["endpoints"]
    assert endpoint["conditions"]["ready"] is True
    assert endpoint["conditions"]["serving"] is True


def test_the_ingress_serves_the_certificate_the_host_copies() -> None:
    ingress = _one(PROD_PLATFORM, INGRESS)
    certificate = _one(PROD_PLATFORM, CERTIFICATE)
    (issuer,) = [r for r in PROD_PLATFORM if r.type == ISSUER]
    assert ingress["spec"]["ingressClassName"] == PROD.ingress_class
    (tls,) = ingress["spec"]["tls"]
    assert (ingress["metadata"]["namespace"], tls["secretName"]) == MAIL_TLS_SECRET
    assert (certificate["metadata"]["namespace"], certificate["spec"]["secretName"]) == (
        MAIL_TLS_SECRET
    )
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": issuer.inputs["metadata"]["name"],
    }
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert certificate["spec"]["dnsNames"] == tls["hosts"] == hosts
    assert "server auth" in certificate["spec"]["usages"]


def test_the_certificate_has_one_owner_not_also_the_ingress_shim() -> None:
    # With the issuer annotation, cert-manager's ingress-shim would claim the same Certificate.
    annotations = _one(PROD_PLATFORM, INGRESS)["metadata"].get("annotations", {})
    assert not any(key.startswith("cert-manager.io/") for key in annotations)


def test_acme_http01_for_mail_goes_through_the_same_ingress_class() -> None:
    (issuer,) = [r for r in PROD_PLATFORM if r.type == ISSUER]
    (solver,) = issuer.inputs["spec"]["acme"]["solvers"]
    ingress = _one(PROD_PLATFORM, INGRESS)
    assert solver["http01"]["ingress"]["ingressClassName"] == ingress["spec"]["ingressClassName"]
    # No policy may keep the ingress controller from cert-manager's solver pods in `mail`.
    assert _in_mail(PROD_PLATFORM, "kubernetes:networking.k8s.io/v1:NetworkPolicy") == []


def test_the_exported_jmap_endpoint_is_the_ingress_host() -> None:
    recording = harness.run(lambda: run(StackInputs.for_platform(PROD)), "platform")
    url, secret = recording.exports["stalwart_jmap_url"]
    assert not secret
    parts = urlsplit(url)
    host, _, _, _ = _route(PROD_PLATFORM)
    assert (parts.scheme, parts.hostname) == ("https", host)


def test_the_mail_objects_go_through_the_cluster_provider() -> None:
    recording = harness.run(lambda: run(StackInputs.for_platform(PROD)), "platform")
    mail = [
        r
        for r in recording.of_type("kubernetes:")
        if r.inputs.get("metadata", {}).get("namespace") == NAMESPACE
    ]
    assert {r.type for r in mail} == {SERVICE, SLICE, INGRESS, CERTIFICATE}
    for resource in mail:
        assert harness.provider_of(resource) == ("pulumi:providers:kubernetes", "k3s")


def test_dev_has_no_mail_front_door_without_a_mail_host() -> None:
    assert DEV.hetzner is None and DEV.services and DEV.services.mail_host is None
    resources = _platform(DEV)
    assert [r for r in resources if r.name.startswith("stalwart")] == []
    assert [r for r in resources if r.inputs.get("metadata", {}).get("name") == NAMESPACE] == []


def test_dev_routes_mail_to_an_explicit_mail_host_with_the_self_signed_issuer() -> None:
    resources = _platform(_with_mail_host(DEV, "192.168.56.10"))
    host, _, addresses, port = _route(resources)
    assert (host, addresses, port) == ("mail.dezky.local", ["192.168.56.10"], 8080)
    assert _one(resources, CERTIFICATE)["spec"]["issuerRef"]["name"] == "self-signed"


def test_an_explicit_mail_host_wins_over_the_hetzner_address() -> None:
    _, _, addresses, _ = _route(_platform(_with_mail_host(PROD, "10.0.0.2")))
    assert addresses == ["10.0.0.2"]


UNUSABLE_ADDRESSES = [
    "127.0.0.1",
    "169.254.1.1",
    "0.0.0.0",  # noqa: S104 (an address refused, not a socket bound)
    "224.0.0.1",
    "2001:db8::1",
    "mail.dezky.eu",
    "10.0.0.300",
]


@pytest.mark.parametrize("address", UNUSABLE_ADDRESSES)
def test_addresses_the_api_server_refuses_are_refused_early(address: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="mail_host"):
        _with_mail_host(DEV, address)
    assert endpoint_problem(address)
    with pytest.raises(ValueError, match="Stalwart's address"):
        StalwartFrontDoorArgs(host="mail.dezky.local", address=address)


def test_a_routable_ipv4_address_is_accepted() -> None:
    assert endpoint_problem("203.0.113.10") is None
    assert endpoint_problem("10.0.0.2") is None


MAIL_OBJECTS = _in_mail(PROD_PLATFORM, SERVICE) + _in_mail(PROD_PLATFORM, SLICE) + _in_mail(
    PROD_PLATFORM, INGRESS
) + [r for r in PROD_PLATFORM if r.name == "stalwart-namespace"]  # fmt: skip


@pytest.mark.parametrize("resource", MAIL_OBJECTS, ids=[r.name for r in MAIL_OBJECTS])
def test_the_mail_objects_match_the_kubernetes_schema(resource: DeclaredResource) -> None:
    kubernetes_validate.validate(
        upstream._object(resource), upstream.KUBERNETES_VERSION, strict=True
    )


def test_the_certificate_matches_the_cert_manager_crd_schema() -> None:
    (certificate,) = _in_mail(PROD_PLATFORM, CERTIFICATE)
    schema = upstream._strict(upstream._schema(upstream.CUSTOM_KINDS[CERTIFICATE]))
    jsonschema.validate(upstream._object(certificate), schema, cls=jsonschema.Draft4Validator)
    broken = {**certificate.inputs, "spec": {**certificate.inputs["spec"], "secret": "mail-tls"}}
    with pytest.raises(jsonschema.ValidationError, match="secret"):
        jsonschema.validate(
            upstream._object(replace(certificate, inputs=broken)),
            schema,
            cls=jsonschema.Draft4Validator,
        )
