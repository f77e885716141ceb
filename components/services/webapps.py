"""Dezky's own web applications (portal, operator portal, platform-api) from pinned images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s


@dataclass(frozen=True)
class WebAppArgs:
    """One of Dezky's web applications: a pinned image behind an ingress.

    ``secret_env`` maps an environment variable to a secret value; it reaches the container
    through the app's Secret (``<name>-secrets``, key: the variable in kebab case), never as a
    plain value in the Deployment.
    """

    name: str
    image: str
    host: str
    port: int
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def secret_name(app: str) -> str:
    """The Secret holding an app's ``secret_env``."""
    return f"{app}-secrets"


def secret_key(variable: str) -> str:
    """The key of ``variable`` in its app's Secret."""
    return variable.lower().replace("_", "-")


class WebApps(pulumi.ComponentResource):
    """Dezky's web applications in one namespace, each a Deployment, Service and Ingress."""

    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self,
        name: str,
        namespace: str,
        apps: Sequence[WebAppArgs],
        exposure: _k8s.Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:WebApps", name, None, opts)
        ns = _k8s.namespace(self, name, namespace)
        self.deployments = {app.name: self._app(app, namespace, exposure, ns) for app in apps}
        self.register_outputs({"apps": sorted(self.deployments)})

    def _app(
        self, app: WebAppArgs, namespace: str, exposure: _k8s.Exposure, ns: pulumi.Resource
    ) -> k8s.apps.v1.Deployment:
        labels = {_k8s.NAME_LABEL: app.name}
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(app.env.items())]
        needs: list[pulumi.Resource] = [ns]
        if app.secret_env:
            name = secret_name(app.name)
            keys = {secret_key(var): value for var, value in app.secret_env.items()}
            needs.append(_k8s.secret(self, name, name, namespace, keys, ns))
            env += [_k8s.secret_env(var, name, secret_key(var)) for var in sorted(app.secret_env)]
        container: Any = {
            "name": app.name,
            "image": app.image,
            "ports": [{"name": "http", "containerPort": app.port, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
            "livenessProbe": {
                "tcpSocket": {"port": "http"},
                "initialDelaySeconds": 15,
                "periodSeconds": 20,
            },
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "512Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        deployment = k8s.apps.v1.Deployment(
            f"{app.name}-deployment",
            metadata=_k8s.meta(app.name, namespace, labels),
            spec=cast(
                Any,
                {
                    "replicas": app.replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": {**_k8s.PART_OF, **labels}},
                        "spec": {
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                        },
                    },
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )
        service = _k8s.service(self, f"{app.name}-service", app.name, namespace, app.port, ns)
        _k8s.ingress(self, f"{app.name}-ingress", app.name, namespace, app.host, exposure, service)
        return deployment
