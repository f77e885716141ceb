"""Kubernetes building blocks every platform service shares: metadata, namespaces, Helm
releases, Secrets, Services, Ingresses, volume claims.

Object specs are plain dicts in the Kubernetes API's own spelling (camelCase, as the upstream
docs write them), typed Any: the SDK's TypedDicts would need every nested level spelled out as
one. The golden tests validate each object against the Kubernetes schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# Helm waits this long for a release's resources to become ready, then rolls back (atomic).
HELM_TIMEOUT_SECONDS = 900
HELM_MAX_HISTORY = 10
PART_OF = {
    "app.kubernetes.io/part-of": "dezky-platform",
    "app.kubernetes.io/managed-by": "dezky-infra",
}
NAME_LABEL = "app.kubernetes.io/name"
# Set by Kubernetes on every namespace (1.22+): what a NetworkPolicy selects a namespace by.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class HelmChart:
    """A chart at an exact version in a chart repository."""

    name: str
    version: str
    repository: str


@dataclass(frozen=True)
class Exposure:
    """How a service is reached from outside: the ingress class and the certificate issuer."""

    ingress_class: str
    cluster_issuer: str

    def annotations(self) -> dict[str, str]:
        return {ISSUER_ANNOTATION: self.cluster_issuer}


def meta(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> k8s.meta.v1.ObjectMetaArgsDict:
    result: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "labels": {**PART_OF, **labels}}
    if namespace is not None:
        result["namespace"] = namespace
    if annotations:
        result["annotations"] = dict(annotations)
    return result


def namespace(parent: pulumi.Resource, name: str, namespace: str) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=meta(namespace, None, {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def release(
    parent: pulumi.Resource,
    name: str,
    chart: HelmChart,
    namespace: str,
    values: Mapping[str, Any],
    depends_on: Sequence[pulumi.Resource],
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        f"{name}-release",
        name=name,  # a fixed release name: charts derive object and host names from it
        chart=chart.name,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
        namespace=namespace,
        create_namespace=False,
        values=dict(values),
        atomic=True,
        cleanup_on_fail=True,
        max_history=HELM_MAX_HISTORY,
        timeout=HELM_TIMEOUT_SECONDS,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def secret(
    parent: pulumi.Resource,
    logical: str,
    name: str,
    namespace: str,
    values: Mapping[str, pulumi.Input[str]],
    depends_on: pulumi.Resource,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        logical,
        metadata=meta(name, namespace, {}),
        type="Opaque",
        string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


def secret_env(env_name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def ingress(
    parent: pulumi.Resource,
    logical: str,
    name: str,
    namespace: str,
    host: str,
    exposure: Exposure,
    depends_on: pulumi.Resource,
) -> k8s.networking.v1.Ingress:
    backend = {"service": {"name": name, "port": {"name": "http"}}}
    spec: Any = {
        "ingressClassName": exposure.ingress_class,
        "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }
        ],
    }
    return k8s.networking.v1.Ingress(
        logical,
        metadata=meta(name, namespace, {NAME_LABEL: name}, exposure.annotations()),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


def service(
    parent: pulumi.Resource,
    logical: str,
    name: str,
    namespace: str,
    port: int,
    depends_on: pulumi.Resource,
) -> k8s.core.v1.Service:
    selector = {NAME_LABEL: name}
    spec: Any = {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
    }
    return k8s.core.v1.Service(
        logical,
        metadata=meta(name, namespace, selector),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


def claim_spec(size: str) -> Any:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}


def keep(parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    """Options for a store of customer data: protected, and kept if ever removed from a stack."""
    return pulumi.ResourceOptions(
        parent=parent, depends_on=list(depends_on), protect=True, retain_on_delete=True
    )
