"""What the programs declare is valid for the upstream systems, not only for our mocks.

Kubernetes objects are checked against the Kubernetes OpenAPI schemas (kubernetes-validate);
Authentik inputs against the request models of the official generated client
(authentik-client), after the Terraform-bridge spellings are mapped to the API's.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import authentik_client
import kubernetes_validate
import pydantic
import pytest

from automation.render import DeclaredResource, render
from tests.golden.test_golden import CASES, _inputs

KUBERNETES_VERSION = "1.31"  # the k3s minor the platform pins

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
}

# References resolved only at deploy time: another resource's id or a platform output.
_REFERENCE = re.compile(r"^(\$\{platform\.[a-z_]+\}|[a-z0-9-]+(-id|\.uuid))$")


def _declared() -> list[tuple[str, DeclaredResource]]:
    return [
        (f"{case.name}/{resource.name}", resource)
        for case in sorted(CASES.iterdir())
        for resource in render(_inputs(case)).resources
    ]


DECLARED = _declared()


@pytest.mark.parametrize(
    "resource",
    [r for _, r in DECLARED if r.type.startswith("kubernetes:")],
    ids=[i for i, r in DECLARED if r.type.startswith("kubernetes:")],
)
def test_kubernetes_objects_match_the_kubernetes_schema(resource: DeclaredResource) -> None:
    kubernetes_validate.validate(resource.inputs, KUBERNETES_VERSION, strict=True)


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
        else:
            request[name] = _api_value(value)
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
    assert Path(CASES / "platform").is_dir()  # the platform's shared flows are checked too
