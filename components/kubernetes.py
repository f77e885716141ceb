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
    labels: Mapping[str, str] = field(default_factory=dict)


class TenantNamespace(pulumi.ComponentResource):
    """Namespace ``tenant-<slug>`` with a ResourceQuota from the tenant's plan."""

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
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": "tenant-quota", "namespace": args.namespace, "labels": labels},
            spec={"hard": hard},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
        )
        self.register_outputs({"namespace": args.namespace})
