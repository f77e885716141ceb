"""cert-manager from its chart, and the ClusterIssuer every ingress certificate comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# https://github.com/cert-manager/cert-manager/tree/v1.21.1/deploy/charts/cert-manager
CERT_MANAGER_CHART = _k8s.HelmChart("cert-manager", "v1.21.1", "https://charts.jetstack.io")
LETSENCRYPT_SERVER = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class AcmeIssuer:
    """Let's Encrypt through ACME HTTP-01, answered through the ingress controller."""

    email: str
    ingress_class: str
    name: str = "letsencrypt"
    server: str = LETSENCRYPT_SERVER


@dataclass(frozen=True)
class SelfSignedIssuer:
    """Self-signed certificates, for environments without public DNS (dev)."""

    name: str = "self-signed"


class CertManager(pulumi.ComponentResource):
    """cert-manager (its CRDs installed by the chart) and the cluster's certificate issuer."""

    release: k8s.helm.v3.Release
    issuer: k8s.apiextensions.CustomResource
    issuer_name: str

    def __init__(
        self,
        name: str,
        issuer: AcmeIssuer | SelfSignedIssuer,
        namespace: str = "cert-manager",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:CertManager", name, None, opts)
        ns = _k8s.namespace(self, name, namespace)
        # crds.keep: removing the release must not delete every Certificate with the CRDs.
        values = {"crds": {"enabled": True, "keep": True}}
        self.release = _k8s.release(self, name, CERT_MANAGER_CHART, namespace, values, [ns])
        self.issuer_name = issuer.name
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=_k8s.meta(issuer.name, None, {}),
            spec=_issuer_spec(issuer),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),  # the CRDs
        )
        self.register_outputs({"issuer": issuer.name})


def _issuer_spec(issuer: AcmeIssuer | SelfSignedIssuer) -> dict[str, Any]:
    if isinstance(issuer, SelfSignedIssuer):
        return {"selfSigned": {}}
    return {
        "acme": {
            "email": issuer.email,
            "server": issuer.server,
            "privateKeySecretRef": {"name": f"{issuer.name}-account-key"},
            "solvers": [{"http01": {"ingress": {"ingressClassName": issuer.ingress_class}}}],
        }
    }
