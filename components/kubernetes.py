"""A tenant's namespace on k3s and the ResourceQuota that bounds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class TenantNamespaceArgs:
    """Inputs of ``TenantNamespace``: the namespace name and the compute it may request."""

    namespace: str
    cpu_cores: int
    memory_gib: int
    max_pods: int
    ingress_namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)


# Per-container defaults: a pod without resources still counts against the quota sensibly.
CONTAINER_DEFAULTS = {"cpu": "500m", "memory": "512Mi"}
CONTAINER_REQUESTS = {"cpu": "100m", "memory": "128Mi"}


class TenantNamespace(pulumi.ComponentResource):
    """Namespace ``tenant-<slug>``: quota and limits from the plan, default-deny ingress."""

    namespace: k8s.core.v1.Namespace
    quota: k8s.core.v1.ResourceQuota

    def __init__(
        self, name: str, args: TenantNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:k8s:TenantNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/managed-by": "dezky-infra", **args.labels}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": labels},
            opts=child,
        )
        # Limits equal requests x2: bursts are allowed, sustained use is what the plan sells.
        hard = {
            "requests.cpu": str(args.cpu_cores),
            "limits.cpu": str(args.cpu_cores * 2),
            "requests.memory": f"{args.memory_gib}Gi",
            "limits.memory": f"{args.memory_gib * 2}Gi",
            "pods": str(args.max_pods),
        }
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": "tenant-quota", "namespace": args.namespace, "labels": labels},
            spec={"hard": hard},
            opts=in_namespace,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=_meta("tenant-limits", args.namespace, labels),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container",
                        default=CONTAINER_DEFAULTS,
                        default_request=CONTAINER_REQUESTS,
                    )
                ]
            ),
            opts=in_namespace,
        )
        # Default deny: only the ingress controller and pods of this namespace may connect.
        peers = [
            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": args.ingress_namespace}
                )
            ),
        ]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=_meta("default-deny-ingress", args.namespace, labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=peers)],
            ),
            opts=in_namespace,
        )
        self.register_outputs({"namespace": args.namespace})


def _meta(name: str, namespace: str, labels: Mapping[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels))
