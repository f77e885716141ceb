"""What the programs declare is valid for the upstream systems, not only for our mocks.

Kubernetes objects are checked against the Kubernetes OpenAPI schemas (kubernetes-validate);
objects of custom resource kinds against the CRD schema of the exact version the platform
installs (kubernetes-validate knows only built-in kinds), kept in schemas/; Helm releases'
values against the chart's own values.schema.json where the chart ships one; Authentik inputs
against the request models of the official generated client (authentik-client), after the
Terraform-bridge spellings are mapped to the API's.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from pathlib import Path
from typing import Any

import authentik_client
import jsonschema
import kubernetes_validate
import pydantic
import pytest

from automation.render import SECRET, DeclaredResource, render
from components.services import certmanager
from tests.golden.test_golden import CASES, _inputs

KUBERNETES_VERSION = "1.33"  # the k3s minor the platform pins (ansible/roles/k3s)
SCHEMAS = Path(__file__).parent / "schemas"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Custom resource kinds the programs declare -> the CRD's openAPIV3Schema at the pinned version.
CUSTOM_KINDS = {
    "kubernetes:cert-manager.io/v1:ClusterIssuer": (
        f"cert-manager-{certmanager.CERT_MANAGER_CHART.version}-clusterissuer.json"
    ),
    "kubernetes:cert-manager.io/v1:Certificate": (
        f"cert-manager-{certmanager.CERT_MANAGER_CHART.version}-certificate.json"
    ),
}
# Charts that ship a values.schema.json, at the pinned version.
CHART_VALUE_SCHEMAS = {
    "cert-manager": f"cert-manager-{certmanager.CERT_MANAGER_CHART.version}-values.json",
}

AUTHENTIK_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "group:Group": authentik_client.GroupRequest,
    "flow:Flow": authentik_client.FlowRequest,
    "flowStageBinding:FlowStageBinding": authentik_client.FlowStageBindingRequest,
    "brand:Brand": authentik_client.BrandRequest,
    "policyBinding:PolicyBinding": authentik_client.PolicyBindingRequest,
    "stageIdentification:StageIdentification": authentik_client.IdentificationStageRequest,
    "stagePassword:StagePassword": authentik_client.PasswordStageRequest,
    "stagePrompt:StagePrompt": authentik_client.PromptStageRequest,
    "stagePromptField:StagePromptField": authentik_client.PromptRequest,
    "stageUserWrite:StageUserWrite": authentik_client.UserWriteStageRequest,
    "stageUserLogin:StageUserLogin": authentik_client.UserLoginStageRequest,
    "stageAuthenticatorValidate:StageAuthenticatorValidate": (
        authentik_client.AuthenticatorValidateStageRequest
    ),
    "stageAuthenticatorTotp:StageAuthenticatorTotp": authentik_client.AuthenticatorTOTPStageRequest,
    "policyExpression:PolicyExpression": authentik_client.ExpressionPolicyRequest,
    "providerOauth2:ProviderOauth2": authentik_client.OAuth2ProviderRequest,
    "application:Application": authentik_client.ApplicationRequest,
    "certificateKeyPair:CertificateKeyPair": authentik_client.CertificateKeyPairRequest,
    "propertyMappingProviderScope:PropertyMappingProviderScope": (
        authentik_client.ScopeMappingRequest
    ),
}
# Terraform-bridge names the API spells differently.
_RENAMED = {"allowed_redirect_uris": "redirect_uris", "protocol_provider": "provider"}

# References resolved only at deploy time: another resource's id or a platform output.
_REFERENCE = re.compile(r"^(\$\{platform\.[a-z_]+\}|[a-z0-9-]+(-id|\.uuid))$")


def _declared() -> list[tuple[str, DeclaredResource]]:
    return [
        (f"{case.name}/{resource.name}", resource)
        for case in sorted(CASES.iterdir())
        for resource in render(_inputs(case)).resources
    ]


DECLARED = _declared()


def _wire_numbers(value: Any) -> Any:
    """Whole numbers as integers: Pulumi carries every number as a double (protobuf Struct), and
    the Kubernetes provider sends whole ones to the API server as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _wire_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_numbers(v) for v in value]
    return value


def _object(resource: DeclaredResource) -> dict[str, Any]:
    """The object as the API server would get it; a masked Secret keeps a masked entry."""
    body: dict[str, Any] = _wire_numbers(dict(resource.inputs))
    for key in ("data", "stringData"):
        if body.get(key) == SECRET:  # the renderer masks the whole map
            body[key] = {"masked": SECRET}
    return body


# Helm releases are not Kubernetes objects (the provider installs the chart): their values
# are checked below, their pins in tests/stacks.
BUILT_IN = [
    (i, r)
    for i, r in DECLARED
    if r.type.startswith("kubernetes:") and r.type not in CUSTOM_KINDS and r.type != HELM_RELEASE
]


@pytest.mark.parametrize("resource", [r for _, r in BUILT_IN], ids=[i for i, _ in BUILT_IN])
def test_kubernetes_objects_match_the_kubernetes_schema(resource: DeclaredResource) -> None:
    kubernetes_validate.validate(_object(resource), KUBERNETES_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server's strict field validation."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


CUSTOM = [(i, r) for i, r in DECLARED if r.type in CUSTOM_KINDS]


@pytest.mark.parametrize("resource", [r for _, r in CUSTOM], ids=[i for i, _ in CUSTOM])
def test_custom_resources_match_their_crd_schema(resource: DeclaredResource) -> None:
    schema = _strict(_schema(CUSTOM_KINDS[resource.type]))
    jsonschema.validate(_object(resource), schema, cls=jsonschema.Draft4Validator)


def test_the_crd_check_refuses_an_unknown_field() -> None:
    resource = next(r for i, r in CUSTOM if i.startswith("platform/"))
    broken = {**resource.inputs, "spec": {"acme": {**resource.inputs["spec"]["acme"], "mail": "x"}}}
    schema = _strict(_schema(CUSTOM_KINDS[resource.type]))
    with pytest.raises(jsonschema.ValidationError, match="mail"):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft4Validator)


RELEASES = [(i, r) for i, r in DECLARED if r.type == HELM_RELEASE]


@pytest.mark.parametrize(
    "resource",
    [r for _, r in RELEASES if r.inputs["chart"] in CHART_VALUE_SCHEMAS],
    ids=[i for i, r in RELEASES if r.inputs["chart"] in CHART_VALUE_SCHEMAS],
)
def test_helm_values_match_the_chart_values_schema(resource: DeclaredResource) -> None:
    schema = _schema(CHART_VALUE_SCHEMAS[resource.inputs["chart"]])
    jsonschema.validate(resource.inputs["values"], schema, cls=jsonschema.Draft7Validator)


def _api_value(value: Any) -> Any:
    if isinstance(value, str) and _REFERENCE.match(value):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, value))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_api_value(v) for v in value]
    return value


def _api_request(resource: DeclaredResource) -> dict[str, Any]:
    """Terraform-bridge inputs (camelCase) as the REST API spells them."""
    request: dict[str, Any] = {}
    for key, value in resource.inputs.items():
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        if name == "attributes":
            request[name] = json.loads(value)
        elif name == "parent":  # the API moved to a list of parents in 2026.2
            request["parents"] = [_api_value(value)]
        elif name == "protocol_provider" and isinstance(value, str):  # a provider's id: a pk
            request["provider"] = zlib.crc32(value.encode()) % 2**31
        else:
            request[_RENAMED.get(name, name)] = _api_value(value)
    return request


AUTHENTIK = [(i, r) for i, r in DECLARED if r.type.startswith("authentik:")]


@pytest.mark.parametrize("resource", [r for _, r in AUTHENTIK], ids=[i for i, _ in AUTHENTIK])
def test_authentik_inputs_match_the_api_models(resource: DeclaredResource) -> None:
    model = AUTHENTIK_MODELS[resource.type.removeprefix("authentik:index/")]
    request = _api_request(resource)
    assert set(request) <= set(model.model_fields), "field unknown to the Authentik API"
    model.model_validate(request)


def test_every_case_was_checked() -> None:
    assert {r.type for _, r in DECLARED if r.type.startswith("kubernetes:")} >= {
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:ResourceQuota",
        "kubernetes:core/v1:LimitRange",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    }
    assert {r.type for _, r in CUSTOM} == set(CUSTOM_KINDS)
    assert {r.inputs["chart"] for _, r in RELEASES} >= set(CHART_VALUE_SCHEMAS)
    assert {r.type for _, r in DECLARED} >= {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service",
        "kubernetes:networking.k8s.io/v1:Ingress",
        "kubernetes:core/v1:Secret",
    }
    assert Path(CASES / "platform").is_dir()  # the platform's shared flows are checked too


def test_objects_are_validated_for_the_kubernetes_the_host_runs() -> None:
    defaults = Path(__file__).resolve().parents[2] / "ansible/roles/k3s/defaults/main.yml"
    pinned = re.search(r"^k3s_version: v(\d+\.\d+)\.", defaults.read_text(), re.M)
    assert pinned is not None and pinned.group(1) == KUBERNETES_VERSION
