"""Authentik (server, worker, its PostgreSQL) from the goauthentik chart."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# https://github.com/goauthentik/helm/tree/authentik-2026.8.0/charts/authentik
AUTHENTIK_CHART = _k8s.HelmChart("authentik", "2026.8.0", "https://charts.goauthentik.io")
AUTHENTIK_SECRET = "authentik-credentials"  # noqa: S105 (a Secret's name)


@dataclass(frozen=True)
class AuthentikArgs:
    """Inputs of ``Authentik``: its host name and secrets.

    ``bootstrap_token`` becomes the API token of ``akadmin`` when Authentik first starts, so
    the stack's Authentik provider (``authentik:token``) can manage it from the first run.
    """

    host: str
    secret_key: pulumi.Input[str]
    postgresql_password: pulumi.Input[str]
    bootstrap_token: pulumi.Input[str]
    namespace: str = "authentik"


class Authentik(pulumi.ComponentResource):
    """Authentik (server, worker, its PostgreSQL) from the goauthentik chart."""

    release: k8s.helm.v3.Release
    url: str

    def __init__(
        self,
        name: str,
        args: AuthentikArgs,
        exposure: _k8s.Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Authentik", name, None, opts)
        ns = _k8s.namespace(self, name, args.namespace)
        secret = _k8s.secret(
            self,
            f"{name}-credentials",
            AUTHENTIK_SECRET,
            args.namespace,
            {
                "secret-key": args.secret_key,
                "postgresql-password": args.postgresql_password,
                "bootstrap-token": args.bootstrap_token,
            },
            ns,
        )
        env = [
            _k8s.secret_env("AUTHENTIK_SECRET_KEY", AUTHENTIK_SECRET, "secret-key"),
            _k8s.secret_env(
                "AUTHENTIK_POSTGRESQL__PASSWORD", AUTHENTIK_SECRET, "postgresql-password"
            ),
            _k8s.secret_env("AUTHENTIK_BOOTSTRAP_TOKEN", AUTHENTIK_SECRET, "bootstrap-token"),
        ]
        values = {
            "global": {"env": env},
            "authentik": {"log_level": "info", "error_reporting": {"enabled": False}},
            "server": {
                "ingress": {
                    "enabled": True,
                    "ingressClassName": exposure.ingress_class,
                    "annotations": exposure.annotations(),
                    "hosts": [args.host],
                    "tls": [{"hosts": [args.host], "secretName": f"{name}-tls"}],
                }
            },
            # The chart's PostgreSQL subchart, its password from the same Secret.
            "postgresql": {
                "enabled": True,
                "auth": {
                    "enablePostgresUser": False,
                    "existingSecret": AUTHENTIK_SECRET,
                    "secretKeys": {"userPasswordKey": "postgresql-password"},
                },
            },
        }
        self.release = _k8s.release(self, name, AUTHENTIK_CHART, args.namespace, values, [secret])
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})
