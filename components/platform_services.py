"""Platform services on k3s: cert-manager with its ClusterIssuer, Authentik, OCIS, Collabora
and Dezky's own web applications (portal, operator portal, platform-api).

Third-party services are installed from their Helm charts with ``helm.v3.Release`` at the exact
chart versions pinned below, next to the values they get: values keys change between chart
versions, so a version bump and its values are reviewed together. Release rather than
``helm.v4.Chart`` because:

* a Release is one custom resource whose inputs (chart, version, repository, values) the
  offline plan records under Pulumi's mock runtime; a v4 Chart is a remote component that the
  provider expands by running Helm, so under mocks it has no children and the plan would show
  nothing of what the service is given;
* Helm keeps its release record in the cluster: chart hooks run as their authors intend
  (Authentik's migrations, cert-manager's CRDs and startup check), ``helm history`` and
  ``helm rollback`` stay available to the on-call operator, and ``atomic`` rolls a failed
  upgrade back, so a reconciler that re-applies on every merge never leaves a half-upgrade.

OCIS is the exception: ``owncloud/ocis-charts`` is not published in any chart repository (its
README: "has not yet been published"; its last tag, v0.5.0, is for oCIS 4), so no chart
version can be pinned. OCIS runs as its single binary from a pinned image instead, the way
upstream's container deployment (``deployments/examples/ocis_full``) runs it.

Secrets never enter Helm values: each service's secrets are a Kubernetes Secret declared here
from Pulumi secrets, and the chart is told the Secret's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class HelmChart:
    """A chart at an exact version in a chart repository."""

    name: str
    version: str
    repository: str


# https://github.com/cert-manager/cert-manager/tree/v1.21.1/deploy/charts/cert-manager
CERT_MANAGER_CHART = HelmChart("cert-manager", "v1.21.1", "https://charts.jetstack.io")
# https://github.com/goauthentik/helm/tree/authentik-2026.8.0/charts/authentik
AUTHENTIK_CHART = HelmChart("authentik", "2026.8.0", "https://charts.goauthentik.io")
# https://github.com/CollaboraOnline/online/tree/master/kubernetes/helm/collabora-online
COLLABORA_CHART = HelmChart(
    "collabora-online", "1.3.1", "https://collaboraonline.github.io/online/"
)
# The oCIS production release line (https://hub.docker.com/r/owncloud/ocis); the image runs as
# uid/gid 1000.
OCIS_IMAGE = "docker.io/owncloud/ocis:7.3.2"
OCIS_USER = 1000
OCIS_PORT = 9200

LETSENCRYPT_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# Helm waits this long for a release's resources to become ready, then rolls back (atomic).
HELM_TIMEOUT_SECONDS = 900
HELM_MAX_HISTORY = 10
PART_OF = {
    "app.kubernetes.io/part-of": "dezky-platform",
    "app.kubernetes.io/managed-by": "dezky-infra",
}


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


@dataclass(frozen=True)
class Exposure:
    """How a service is reached from outside: the ingress class and the certificate issuer."""

    ingress_class: str
    cluster_issuer: str

    def annotations(self) -> dict[str, str]:
        return {ISSUER_ANNOTATION: self.cluster_issuer}


# Object specs below are plain dicts in the Kubernetes API's own spelling (camelCase, as the
# upstream docs write them), typed Any: the SDK's TypedDicts would need every nested level
# spelled out as one. The golden tests validate each object against the Kubernetes schemas.


def _meta(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> k8s.meta.v1.ObjectMetaArgsDict:
    meta: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "labels": {**PART_OF, **labels}}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _namespace(parent: pulumi.Resource, name: str, namespace: str) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=_meta(namespace, None, {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _release(
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


def _secret(
    parent: pulumi.Resource,
    logical: str,
    name: str,
    namespace: str,
    values: Mapping[str, pulumi.Input[str]],
    depends_on: pulumi.Resource,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        logical,
        metadata=_meta(name, namespace, {}),
        type="Opaque",
        string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


def _secret_env(env_name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _ingress(
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
        metadata=_meta(name, namespace, {"app.kubernetes.io/name": name}, exposure.annotations()),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


def _service(
    parent: pulumi.Resource,
    logical: str,
    name: str,
    namespace: str,
    port: int,
    depends_on: pulumi.Resource,
) -> k8s.core.v1.Service:
    selector = {"app.kubernetes.io/name": name}
    spec: Any = {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
    }
    return k8s.core.v1.Service(
        logical,
        metadata=_meta(name, namespace, selector),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[depends_on]),
    )


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
        ns = _namespace(self, name, namespace)
        # crds.keep: removing the release must not delete every Certificate with the CRDs.
        values = {"crds": {"enabled": True, "keep": True}}
        self.release = _release(self, name, CERT_MANAGER_CHART, namespace, values, [ns])
        self.issuer_name = issuer.name
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=_meta(issuer.name, None, {}),
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


AUTHENTIK_SECRET = "authentik-credentials"  # noqa: S105 (a Secret's name)


class Authentik(pulumi.ComponentResource):
    """Authentik (server, worker, its PostgreSQL) from the goauthentik chart."""

    release: k8s.helm.v3.Release
    url: str

    def __init__(
        self,
        name: str,
        args: AuthentikArgs,
        exposure: Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Authentik", name, None, opts)
        ns = _namespace(self, name, args.namespace)
        secret = _secret(
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
            _secret_env("AUTHENTIK_SECRET_KEY", AUTHENTIK_SECRET, "secret-key"),
            _secret_env("AUTHENTIK_POSTGRESQL__PASSWORD", AUTHENTIK_SECRET, "postgresql-password"),
            _secret_env("AUTHENTIK_BOOTSTRAP_TOKEN", AUTHENTIK_SECRET, "bootstrap-token"),
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
        self.release = _release(self, name, AUTHENTIK_CHART, args.namespace, values, [secret])
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})


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
        exposure: Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Ocis", name, None, opts)
        ns = _namespace(self, name, args.namespace)
        labels = {"app.kubernetes.io/name": name}
        volumes = {"config": args.config_volume, "data": args.data_volume}
        # Files (or, with S3, their metadata) and the config with OCIS' internal secrets:
        # protected and retained like every store of customer data.
        keep = pulumi.ResourceOptions(
            parent=self, depends_on=[ns], protect=True, retain_on_delete=True
        )
        claims = [
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{volume}",
                metadata=_meta(f"{name}-{volume}", args.namespace, labels),
                spec=_claim_spec(size),
                opts=keep,
            )
            for volume, size in volumes.items()
        ]
        env = _ocis_env(args)
        needs: list[pulumi.Resource] = [*claims]
        if args.s3 is not None:
            secret_name = f"{name}-object-storage"
            keys = {"access-key": args.s3.access_key, "secret-key": args.s3.secret_key}
            needs.append(_secret(self, secret_name, secret_name, args.namespace, keys, ns))
            env += [
                _secret_env("STORAGE_USERS_S3NG_ACCESS_KEY", secret_name, "access-key"),
                _secret_env("STORAGE_USERS_S3NG_SECRET_KEY", secret_name, "secret-key"),
            ]
        container: Any = {
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
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=_meta(name, args.namespace, labels),
            spec=cast(
                Any,
                {
                    "replicas": 1,
                    "strategy": {"type": "Recreate"},  # one writer on ReadWriteOnce volumes
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": {**PART_OF, **labels}},
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
                                {
                                    "name": volume,
                                    "persistentVolumeClaim": {"claimName": f"{name}-{volume}"},
                                }
                                for volume in volumes
                            ],
                        },
                    },
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )
        service = _service(self, f"{name}-service", name, args.namespace, OCIS_PORT, ns)
        _ingress(self, f"{name}-ingress", name, args.namespace, args.host, exposure, service)
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url})


def _claim_spec(size: str) -> Any:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}


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
        exposure: Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:Collabora", name, None, opts)
        ns = _namespace(self, name, args.namespace)
        secret_name = f"{name}-admin"
        secret = _secret(
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
        self.release = _release(self, name, COLLABORA_CHART, args.namespace, values, [secret])
        self.register_outputs({"url": f"https://{args.host}"})


@dataclass(frozen=True)
class WebAppArgs:
    """One of Dezky's web applications: a pinned image behind an ingress.

    ``secret_env`` maps an environment variable to a secret value; it reaches the container
    through the app's Secret, never as a plain value in the Deployment.
    """

    name: str
    image: str
    host: str
    port: int
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class WebApps(pulumi.ComponentResource):
    """Dezky's web applications in one namespace, each a Deployment, Service and Ingress."""

    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self,
        name: str,
        namespace: str,
        apps: Sequence[WebAppArgs],
        exposure: Exposure,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:platform:WebApps", name, None, opts)
        ns = _namespace(self, name, namespace)
        self.deployments = {app.name: self._app(app, namespace, exposure, ns) for app in apps}
        self.register_outputs({"apps": sorted(self.deployments)})

    def _app(
        self, app: WebAppArgs, namespace: str, exposure: Exposure, ns: pulumi.Resource
    ) -> k8s.apps.v1.Deployment:
        labels = {"app.kubernetes.io/name": app.name}
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(app.env.items())]
        needs: list[pulumi.Resource] = [ns]
        if app.secret_env:
            secret_name = f"{app.name}-secrets"
            keys = {var.lower().replace("_", "-"): value for var, value in app.secret_env.items()}
            needs.append(_secret(self, secret_name, secret_name, namespace, keys, ns))
            env += [
                _secret_env(var, secret_name, var.lower().replace("_", "-"))
                for var in sorted(app.secret_env)
            ]
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
            metadata=_meta(app.name, namespace, labels),
            spec=cast(
                Any,
                {
                    "replicas": app.replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": {**PART_OF, **labels}},
                        "spec": {
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                        },
                    },
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs),
        )
        service = _service(self, f"{app.name}-service", app.name, namespace, app.port, ns)
        _ingress(self, f"{app.name}-ingress", app.name, namespace, app.host, exposure, service)
        return deployment


@dataclass(frozen=True)
class PlatformServicesArgs:
    """Everything the platform runs on k3s."""

    ingress_class: str
    issuer: AcmeIssuer | SelfSignedIssuer
    authentik: AuthentikArgs
    ocis: OcisArgs
    collabora: CollaboraArgs
    apps: Sequence[WebAppArgs]
    apps_namespace: str = "dezky-system"


class PlatformServices(pulumi.ComponentResource):
    """cert-manager, Authentik, OCIS, Collabora and the web apps, each in its namespace.

    Give it the cluster's provider (``ResourceOptions(providers=[...])``): every object below
    inherits it through its parent.
    """

    cert_manager: CertManager
    authentik: Authentik
    ocis: Ocis
    collabora: Collabora
    apps: WebApps

    def __init__(
        self, name: str, args: PlatformServicesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:platform:PlatformServices", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cert_manager = CertManager("cert-manager", args.issuer, opts=child)
        exposure = Exposure(args.ingress_class, self.cert_manager.issuer_name)
        self.authentik = Authentik("authentik", args.authentik, exposure, opts=child)
        self.ocis = Ocis("ocis", args.ocis, exposure, opts=child)
        self.collabora = Collabora("collabora", args.collabora, exposure, opts=child)
        self.apps = WebApps("dezky-apps", args.apps_namespace, args.apps, exposure, opts=child)
        self.register_outputs({"authentik_url": self.authentik.url, "ocis_url": self.ocis.url})
