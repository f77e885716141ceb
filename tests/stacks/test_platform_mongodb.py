"""The platform's MongoDB: what platform-api, the run API and the host's backup dump rely on."""

from __future__ import annotations

import inspect
import re
import shlex
from typing import Any

import pulumi
import pytest
from pymongo import uri_parser

from automation import mongo
from automation.render import render
from components.services import mongodb
from stacks import platform_host
from stacks import secrets as names
from stacks.program import StackInputs, run
from stacks.secrets import StackSecrets
from tenants.environment import image_problem, load_environment
from tests.conftest import REPO
from tests.stacks import harness

PROD = load_environment(REPO / "environments" / "prod.yaml")
DEV = load_environment(REPO / "environments" / "dev.yaml")
# A password a URI would break on if it were not escaped.
PASSWORD = "p@ss:w/rd?#%&"  # noqa: S105 (a test value)


def _secret(name: str) -> pulumi.Input[str]:
    return PASSWORD if name == names.MONGODB_ROOT_PASSWORD else f"plain-{name}"


def _recording(environment: Any = PROD) -> harness.Recording:
    inputs = StackInputs.for_platform(environment, StackSecrets(_secret))
    return harness.run(lambda: run(inputs), "platform")


PROD_RECORDING = _recording()


def _objects(kind: str, namespace: str) -> list[harness.Registered]:
    return [
        r
        for r in PROD_RECORDING.of_type(f"kubernetes:{kind}")
        if r.inputs["metadata"].get("namespace") == namespace
    ]


def _secret_data(name: str) -> dict[str, str]:
    (secret,) = [
        r
        for r in PROD_RECORDING.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == name
    ]
    data = secret.inputs["stringData"]
    assert isinstance(data, harness.Secret)  # sent to the engine as a secret
    return dict(data.value)


def _dump() -> platform_host.BackupSource:
    (source,) = [s for s in platform_host.BACKUP_SOURCES if s.name == "mongodb"]
    assert source.dump_command
    return source


def _pod(statefulset: harness.Registered) -> dict[str, Any]:
    spec: dict[str, Any] = statefulset.inputs["spec"]["template"]["spec"]
    return spec


def test_the_backup_dump_finds_the_statefulset_it_execs_into() -> None:
    words = shlex.split(_dump().dump_command or "")
    namespace, target = words[words.index("-n") + 1], words[words.index("exec") + 1]
    kind, name = target.split("/")
    assert kind == "statefulset"
    (statefulset,) = _objects("apps/v1:StatefulSet", namespace)
    assert statefulset.inputs["metadata"]["name"] == name
    assert len(_pod(statefulset)["containers"]) == 1  # kubectl exec picks the only one


def test_the_dump_and_the_server_read_the_root_credentials_from_the_same_secret_keys() -> None:
    variables = set(re.findall(r"\$(MONGO_INITDB_ROOT_[A-Z]+)", _dump().dump_command or ""))
    assert variables == {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"}
    (statefulset,) = _objects("apps/v1:StatefulSet", "platform")
    (container,) = _pod(statefulset)["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) >= variables
    for variable in variables:
        ref = env[variable]
        assert ref["key"] in _secret_data(ref["name"]), variable
    data = _secret_data(env["MONGO_INITDB_ROOT_PASSWORD"]["name"])
    assert data[env["MONGO_INITDB_ROOT_PASSWORD"]["key"]] == PASSWORD


def test_platform_api_connects_with_the_same_credentials_to_the_headless_service() -> None:
    uri = _secret_data("platform-api-secrets")["mongodb-uri"]
    parsed = uri_parser.parse_uri(uri)  # the driver's own parser: escaping is checked too
    credentials = _secret_data("mongodb-credentials")
    assert parsed["username"] == credentials["username"]
    assert parsed["password"] == credentials["password"] == PASSWORD
    assert parsed["options"]["authSource"] == "admin"
    (service,) = _objects("core/v1:Service", "platform")
    host = f"{service.inputs['metadata']['name']}.platform.svc.cluster.local"
    (port,) = service.inputs["spec"]["ports"]
    assert parsed["nodelist"] == [(host, port["port"])]
    assert service.inputs["spec"]["clusterIP"] == "None"  # headless: no NodePort, no LB


def test_platform_api_and_the_run_api_use_the_same_database() -> None:
    uri = _secret_data("platform-api-secrets")["mongodb-uri"]
    run_api_default = inspect.signature(mongo.connect).parameters["database"].default
    assert uri_parser.parse_uri(uri)["database"] == run_api_default


def test_the_data_volume_is_protected_and_kept() -> None:
    claims = [
        r
        for r in PROD_RECORDING.of_type("kubernetes:core/v1:PersistentVolumeClaim")
        if r.inputs["metadata"]["namespace"] == "platform"
    ]
    (claim,) = claims
    (declared,) = [
        r for r in render(StackInputs.for_platform(PROD)).resources if r.name == claim.name
    ]
    assert declared.protect and declared.retain_on_delete
    (statefulset,) = _objects("apps/v1:StatefulSet", "platform")
    # The claim is its own (protected) resource, not a volumeClaimTemplate the stack cannot
    # protect; the pod mounts it as the data directory.
    assert "volumeClaimTemplates" not in statefulset.inputs["spec"]
    (volume,) = _pod(statefulset)["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim.inputs["metadata"]["name"]
    (container,) = _pod(statefulset)["containers"]
    assert {"name": volume["name"], "mountPath": "/data/db"} in container["volumeMounts"]


def test_only_platform_api_pods_may_connect() -> None:
    (policy,) = _objects("networking.k8s.io/v1:NetworkPolicy", "platform")
    spec = policy.inputs["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "mongodb"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == []
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": mongodb.MONGODB_PORT}]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dezky-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "platform-api"}},
        }
    ]
    # ... and those labels are platform-api's pods'.
    (api,) = [r for r in PROD_RECORDING.of_type("kubernetes:apps/v1:Deployment")
              if r.inputs["metadata"]["name"] == "platform-api"]  # fmt: skip
    assert api.inputs["metadata"]["namespace"] == "dezky-system"
    labels = api.inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "platform-api"


def test_no_clients_admits_nobody() -> None:
    spec = mongodb._policy_spec([], {"app.kubernetes.io/name": "mongodb"})
    assert spec["ingress"] == []  # an empty "from" would admit every pod


def test_mongodb_is_not_exposed_outside_the_cluster() -> None:
    for ingress in PROD_RECORDING.of_type("kubernetes:networking.k8s.io/v1:Ingress"):
        assert ingress.inputs["metadata"]["namespace"] != "platform"
    for service in _objects("core/v1:Service", "platform"):
        assert service.inputs["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_the_server_is_pinned_probed_and_bounded() -> None:
    (statefulset,) = _objects("apps/v1:StatefulSet", "platform")
    assert statefulset.inputs["spec"]["replicas"] == 1
    (container,) = _pod(statefulset)["containers"]
    assert container["image"].startswith("docker.io/library/mongo:8.0.")
    assert image_problem(container["image"]) is None
    assert "mongosh" in container["readinessProbe"]["exec"]["command"]
    assert container["livenessProbe"]["tcpSocket"] == {"port": "mongodb"}
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert _pod(statefulset)["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("password", ["plain", "a@b:c/d?e#f%g h+i"])
def test_the_uri_escapes_any_password_and_stays_secret(password: str) -> None:
    args = mongodb.MongoDbArgs(root_password=password, clients=[])
    recording = harness.run(lambda: pulumi.export("uri", mongodb.connection_uri(args)), "platform")
    uri, secret = recording.exports["uri"]
    assert secret
    assert uri_parser.parse_uri(uri)["password"] == password


def test_dev_runs_mongodb_too() -> None:
    recording = _recording(DEV)
    assert [r.name for r in recording.of_type("kubernetes:apps/v1:StatefulSet")] == [
        "mongodb-statefulset"
    ]
