"""OCIS as its single binary (``ocis server``) from a pinned image, config and data on volumes.

``owncloud/ocis-charts`` is not published in any chart repository (its README: "has not yet
been published"; its last tag, v0.5.0, is for oCIS 4), so no chart version can be pinned. OCIS
runs the way upstream's container deployment (``deployments/examples/ocis_full``) runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# The oCIS production release line (https://hub.docker.com/r/owncloud/ocis); the image runs as
# uid/gid 1000.
OCIS_IMAGE = "docker.io/owncloud/ocis:7.3.2"
OCIS_USER = 1000
OCIS_PORT = 9200


@dataclass(frozen=True)
class S3Backend:
    """Where OCIS keeps file blobs: an S3 bucket (metadata stays on its volume)."""

    endpoint: str
    region: str
    bucket: str
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]


@dataclass(frozen=True)
class OcisArgs:
    """Inputs of ``Ocis``.

    ``oidc_issuer`` and ``oidc_client_id`` name the Authentik application OCIS signs users in
    with (OCIS' own IdP is not run). ``insecure`` skips certificate checks between OCIS and
    Authentik, for self-signed certificates only.
    """

    host: str
    oidc_issuer: str
    oidc_client_id: str
    insecure: bool
    s3: S3Backend | None = None
    namespace: str = "ocis"
    config_volume: str = "1Gi"
    data_volume: str = "50Gi"


class Ocis(pulumi.ComponentResource):
    """OCIS as one process (``ocis server``) with its config and data on volumes."""

    deployment: k8s.apps.v1.Deployment
    url: str

    def __init__(
        self,
        name: str,
        args: OcisArgs,
        exposure: _k8s.Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Ocis", name, None, opts)
        ns = _k8s.namespace(self, name, args.namespace)
        labels = {_k8s.NAME_LABEL: name}
        volumes = {"config": args.config_volume, "data": args.data_volume}
        # Files (or, with S3, their metadata) and the config with OCIS' internal secrets:
        # protected and retained like every store of customer data.
        claims = [
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{volume}",
                metadata=_k8s.meta(f"{name}-{volume}", args.namespace, labels),
                spec=_k8s.claim_spec(size),
                opts=_k8s.keep(self, [ns]),
            )
            for volume, size in volumes.items()
        ]
        env = _ocis_env(args)
        needs: list[pulumi.Resource] = [*claims]
        if args.s3 is not None:
            secret_name = f"{name}-object-storage"
            keys = {"access-key": args.s3.access_key, "secret-key": args.s3.secret_key}
            needs.append(_k8s.secret(self, secret_name, secret_name, args.namespace, keys, ns))
            env += [
                _k8s.secret_env("STORAGE_USERS_S3NG_ACCESS_KEY", secret_name, "access-key"),
                _k8s.secret_env("STORAGE_USERS_S3NG_SECRET_KEY", secret_name, "secret-key"),
            ]
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=_k8s.meta(name, args.namespace, labels),
            spec=cast(Any, _deployment_spec(name, labels, env, list(volumes))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )
        service = _k8s.service(self, f"{name}-service", name, args.namespace, OCIS_PORT, ns)
        _k8s.ingress(self, f"{name}-ingress", name, args.namespace, args.host, exposure, service)
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})


def _deployment_spec(
    name: str, labels: dict[str, str], env: list[dict[str, Any]], volumes: list[str]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": OCIS_IMAGE,
        # `ocis init` writes a config with random internal secrets on the first start and
        # refuses to overwrite it afterwards; then the server runs as PID 1.
        "command": ["/bin/sh", "-c", "ocis init || true; exec ocis server"],
        "ports": [{"name": "http", "containerPort": OCIS_PORT, "protocol": "TCP"}],
        "env": env,
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/ocis"},
            {"name": "data", "mountPath": "/var/lib/ocis"},
        ],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "livenessProbe": {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
        },
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "replicas": 1,
        "strategy": {"type": "Recreate"},  # one writer on ReadWriteOnce volumes
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": {**_k8s.PART_OF, **labels}},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": OCIS_USER,
                    "runAsGroup": OCIS_USER,
                    "fsGroup": OCIS_USER,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [
                    {"name": volume, "persistentVolumeClaim": {"claimName": f"{name}-{volume}"}}
                    for volume in volumes
                ],
            },
        },
    }


def _ocis_env(args: OcisArgs) -> list[dict[str, Any]]:
    plain = {
        "OCIS_URL": f"https://{args.host}",
        "OCIS_LOG_LEVEL": "info",
        "OCIS_INSECURE": str(args.insecure).lower(),
        # TLS ends at the ingress controller.
        "PROXY_TLS": "false",
        "PROXY_HTTP_ADDR": f"0.0.0.0:{OCIS_PORT}",
        # Users sign in with Authentik; accounts are created on first login.
        "OCIS_EXCLUDE_RUN_SERVICES": "idp",
        "OCIS_OIDC_ISSUER": args.oidc_issuer,
        "WEB_OIDC_CLIENT_ID": args.oidc_client_id,
        "PROXY_OIDC_REWRITE_WELLKNOWN": "true",
        "PROXY_AUTOPROVISION_ACCOUNTS": "true",
        "PROXY_USER_OIDC_CLAIM": "preferred_username",
        "PROXY_USER_CS3_CLAIM": "username",
    }
    if args.s3 is not None:
        plain |= {
            "STORAGE_USERS_DRIVER": "s3ng",
            "STORAGE_SYSTEM_DRIVER": "ocis",  # system data is small: it stays on the volume
            "STORAGE_USERS_S3NG_ENDPOINT": args.s3.endpoint,
            "STORAGE_USERS_S3NG_REGION": args.s3.region,
            "STORAGE_USERS_S3NG_BUCKET": args.s3.bucket,
        }
    return [{"name": key, "value": value} for key, value in plain.items()]
