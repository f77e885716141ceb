"""Collabora Online (CODE) from its chart; only the files host may open documents in it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# https://github.com/CollaboraOnline/online/tree/master/kubernetes/helm/collabora-online
COLLABORA_CHART = _k8s.HelmChart(
    "collabora-online", "1.3.1", "https://collaboraonline.github.io/online/"
)


@dataclass(frozen=True)
class CollaboraArgs:
    """Inputs of ``Collabora``: its host, the WOPI host allowed to use it, the admin login."""

    host: str
    wopi_host: str
    admin_password: pulumi.Input[str]
    admin_user: str = "admin"
    namespace: str = "collabora"


class Collabora(pulumi.ComponentResource):
    """Collabora Online (CODE) from its chart; only the files host may open documents in it."""

    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        args: CollaboraArgs,
        exposure: _k8s.Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Collabora", name, None, opts)
        ns = _k8s.namespace(self, name, args.namespace)
        secret_name = f"{name}-admin"
        secret = _k8s.secret(
            self,
            secret_name,
            secret_name,
            args.namespace,
            {"username": args.admin_user, "password": args.admin_password},
            ns,
        )
        # TLS ends at the ingress; the files host may embed the editor and be its WOPI host.
        params = (
            "--o:ssl.enable=false --o:ssl.termination=true "
            f"--o:net.frame_ancestors={args.wopi_host}"
        )
        values = {
            "replicaCount": 1,
            "autoscaling": {"enabled": False},  # one server: no autoscaling
            "collabora": {
                "aliasgroups": [{"host": f"https://{args.wopi_host}:443"}],
                "extra_params": params,
                "server_name": args.host,
                "existingSecret": {
                    "enabled": True,
                    "secretName": secret_name,
                    "usernameKey": "username",
                    "passwordKey": "password",
                },
            },
            "ingress": {
                "enabled": True,
                "className": exposure.ingress_class,
                "annotations": exposure.annotations(),
                "hosts": [
                    {
                        "host": args.host,
                        "paths": [{"path": "/", "pathType": "ImplementationSpecific"}],
                    }
                ],
                "tls": [{"hosts": [args.host], "secretName": f"{name}-tls"}],
            },
        }
        self.release = _k8s.release(self, name, COLLABORA_CHART, args.namespace, values, [secret])
        self.register_outputs({"url": f"https://{args.host}"})
