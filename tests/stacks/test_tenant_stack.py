"""A tenant stack reaches the platform's cluster and Authentik through the platform's outputs."""

from __future__ import annotations

import pytest

from stacks import refs
from stacks import secrets as names
from stacks.program import StackInputs, run
from tenants.environment import load_environment
from tenants.loader import load_tenant
from tests.conftest import REPO
from tests.stacks import harness

PROD = load_environment(REPO / "environments" / "prod.yaml")
ACME = load_tenant(REPO / "tenants" / "acme.yaml").tenant


@pytest.fixture(scope="module")
def acme() -> harness.Recording:
    return harness.run(lambda: run(StackInputs.for_tenant(ACME, PROD)), "tenant-acme")


def test_the_platform_outputs_include_service_urls_and_a_secret_kubeconfig() -> None:
    assert {"authentik_url", "stalwart_jmap_url", "ocis_url", "kubeconfig"} <= set(
        refs.OUTPUT_NAMES
    )
    assert {"kubeconfig"} == refs.SECRET_OUTPUTS


def test_k8s_resources_use_the_provider_built_from_the_platform_kubeconfig(
    acme: harness.Recording,
) -> None:
    (provider,) = acme.of_type("pulumi:providers:kubernetes")
    # The mocked stack reference answers "${platform.<output>}": this is the platform's output,
    # and it stays a secret.
    assert provider.inputs["kubeconfig"] == harness.Secret("${platform.kubeconfig}")
    objects = acme.of_type("kubernetes:")
    assert {o.type for o in objects} >= {
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:ResourceQuota",
        "kubernetes:core/v1:LimitRange",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    }
    for resource in objects:
        assert harness.provider_of(resource) == ("pulumi:providers:kubernetes", provider.name)


def test_authentik_resources_use_the_platform_url_and_the_configured_token(
    acme: harness.Recording,
) -> None:
    (provider,) = acme.of_type("pulumi:providers:authentik")
    assert provider.inputs["url"] == "${platform.authentik_url}"
    assert provider.inputs["token"] == harness.Secret(f"offline:{names.AUTHENTIK_TOKEN}")
    objects = acme.of_type("authentik:")
    assert len(objects) >= 6  # groups, flow, bindings, brand
    for resource in objects:
        assert harness.provider_of(resource) == ("pulumi:providers:authentik", provider.name)


def test_no_tenant_resource_falls_back_to_a_default_provider(acme: harness.Recording) -> None:
    for resource in acme.resources:
        if resource.type.startswith(("kubernetes:", "authentik:")):
            assert resource.provider is not None
            assert "default" not in (harness.provider_of(resource) or ("", ""))[1]
