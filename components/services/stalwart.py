"""Stalwart's front door on k3s: mail.<base> through the ingress controller to the host.

Stalwart runs on the bare-metal host (``ansible/roles/stalwart``), not in the cluster: its HTTP
listener (JMAP, web admin, ``/.well-known/jmap``, OAuth) serves plain HTTP on port 8080 and TLS
ends at the ingress controller, which owns 443. In namespace ``mail``:

* a Service ``stalwart`` without a selector and an EndpointSlice naming the host's address, so
  the ingress controller and kube-proxy route to the host (k3s 1.33 bundles Traefik 3, which
  reads EndpointSlices since 3.1; the Endpoints API is deprecated since Kubernetes 1.33).
  Pods reach the node's own address; the host firewall trusts the pod network
  (``base_trusted_networks``). The slice states its endpoint ready and serving: Traefik drops
  endpoints whose ``ready`` condition is unset, and nothing probes a host endpoint to set it;
* a cert-manager Certificate ``mail-tls`` (``MAIL_TLS_SECRET``) from the cluster issuer. The
  host copies that Secret to ``/etc/stalwart/tls`` (``tls.crt``: the chain, ``fullchain.pem``;
  ``tls.key``: ``privkey.pem``) for SMTP and IMAP TLS, so the certificate is declared here
  rather than left to cert-manager's ingress-shim: a second consumer depends on the Secret's
  name and key type, and a shim-made Certificate belongs to the Ingress (it goes with the
  Ingress, or when the Ingress's TLS entry changes, and the host's copy then expires without a
  word). Without the issuer annotation the shim leaves this Ingress alone. HTTP-01
  challenges are answered by cert-manager's solver Ingress for the same host in this
  namespace;
* an Ingress for the host routing ``/`` to ``stalwart:8080`` with that Secret.

No NetworkPolicy: a policy selects pods, and the only pods ever in ``mail`` are cert-manager's
short-lived HTTP-01 solvers, which the ingress controller must reach. What may connect to port
8080 is the host firewall's decision (the pod network), not the cluster's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# (namespace, name) of the Secret holding mail.<base>'s certificate and key; the host copies it
# to /etc/stalwart/tls for its SMTP and IMAP listeners (ansible/roles/stalwart).
MAIL_TLS_SECRET = ("mail", "mail-tls")
SERVICE_NAME = "stalwart"
# Stalwart's HTTP listener on the host (ansible/roles/stalwart, stalwart_listeners: http).
STALWART_HTTP_PORT = 8080
# Ties an EndpointSlice to its Service; ``managed-by`` keeps the endpoint controllers off it.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "dezky-infra"
# RSA: some MTAs still offer only RSA key exchange; a new key on every renewal.
PRIVATE_KEY = {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Always"}
USAGES = ("digital signature", "key encipherment", "server auth")


def endpoint_problem(address: str) -> str | None:
    """Why ``address`` cannot be an EndpointSlice's IPv4 endpoint, or None when it can."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"'{address}' is not an IP address"
    if not isinstance(ip, ipaddress.IPv4Address):
        return f"'{address}' is not an IPv4 address (the cluster's pod network is IPv4 only)"
    # The API server refuses these endpoint addresses (ValidateEndpointIP).
    if ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast:
        return f"'{address}' cannot be an endpoint (unspecified, loopback, link-local, multicast)"
    return None


@dataclass(frozen=True)
class StalwartFrontDoorArgs:
    """Inputs of ``StalwartFrontDoor``.

    ``address``: where pods reach the host's Stalwart HTTP listener (the node's own IPv4).
    """

    host: str
    address: str
    port: int = STALWART_HTTP_PORT

    def __post_init__(self) -> None:
        problem = endpoint_problem(self.address)
        if problem:
            raise ValueError(f"Stalwart's address: {problem}")


class StalwartFrontDoor(pulumi.ComponentResource):
    """mail.<base> through the ingress controller to Stalwart on the host, with its certificate."""

    service: k8s.core.v1.Service
    endpoints: k8s.discovery.v1.EndpointSlice
    certificate: k8s.apiextensions.CustomResource
    ingress: k8s.networking.v1.Ingress
    url: str

    def __init__(
        self,
        name: str,
        args: StalwartFrontDoorArgs,
        exposure: _k8s.Exposure,
        issuer: pulumi.Resource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``issuer``: the ClusterIssuer resource; the Certificate needs it and its CRDs first."""
        super().__init__("dezky:platform:StalwartFrontDoor", name, None, opts)
        namespace, secret = MAIL_TLS_SECRET
        labels = {_k8s.NAME_LABEL: SERVICE_NAME}
        ns = _k8s.namespace(self, name, namespace)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=_k8s.meta(SERVICE_NAME, namespace, labels),
            spec=cast(Any, {"type": "ClusterIP", "ports": [_port(args.port)]}),  # no selector
            opts=in_namespace,
        )
        self.endpoints = k8s.discovery.v1.EndpointSlice(
            f"{name}-endpoints",
            metadata=_k8s.meta(
                SERVICE_NAME,
                namespace,
                {**labels, SERVICE_NAME_LABEL: SERVICE_NAME, MANAGED_BY_LABEL: SLICE_MANAGER},
            ),
            address_type="IPv4",
            endpoints=cast(Any, [_endpoint(args.address)]),
            ports=cast(Any, [_port(args.port)]),
            opts=in_namespace,
        )
        self.certificate = k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=_k8s.meta(secret, namespace, labels),
            spec=_certificate_spec(args.host, secret, exposure.cluster_issuer, labels),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, issuer]),
        )
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=_k8s.meta(SERVICE_NAME, namespace, labels),
            spec=cast(Any, _ingress_spec(args, exposure.ingress_class, secret)),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.service, self.endpoints, self.certificate]
            ),
        )
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})


def _port(port: int) -> dict[str, Any]:
    return {"name": "http", "port": port, "protocol": "TCP"}


def _endpoint(address: str) -> dict[str, Any]:
    # Stated, not observed: nothing probes the host; Traefik skips endpoints without `ready`.
    return {
        "addresses": [address],
        "conditions": {"ready": True, "serving": True, "terminating": False},
    }


def _certificate_spec(
    host: str, secret: str, issuer: str, labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "secretName": secret,
        "secretTemplate": {"labels": {**_k8s.PART_OF, **labels}},
        "dnsNames": [host],
        "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer},
        "privateKey": dict(PRIVATE_KEY),
        "usages": list(USAGES),
        "revisionHistoryLimit": 3,
    }


def _ingress_spec(args: StalwartFrontDoorArgs, ingress_class: str, secret: str) -> dict[str, Any]:
    backend = {"service": {"name": SERVICE_NAME, "port": {"number": args.port}}}
    return {
        "ingressClassName": ingress_class,
        "tls": [{"hosts": [args.host], "secretName": secret}],
        "rules": [
            {
                "host": args.host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }
        ],
    }
