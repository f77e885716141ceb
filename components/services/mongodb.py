"""MongoDB for platform-api (and the run API and worker, which read the same database).

One ``mongod`` from the official image at an exact version, as a StatefulSet of one with its
data on a volume that is protected and kept like every store of customer data. No chart: the
Bitnami chart, the usual one, no longer ships free images, and a single unreplicated server
needs nothing a chart adds. Reached only inside the cluster (a headless Service, no Ingress),
and only from the client pods a NetworkPolicy names.

The root user is created by the image's entrypoint on the first start from
``MONGO_INITDB_ROOT_USERNAME``/``MONGO_INITDB_ROOT_PASSWORD``; the host's nightly dump
(``stacks/platform_host.py``) authenticates with the same variables inside the container.
Those variables are read only while the data volume is empty: rotating the password means
``db.changeUserPassword`` in the running server first, then the platform secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from components.services import _k8s

# The 8.0 release series; tags as the official image publishes them:
# https://github.com/docker-library/official-images/blob/master/library/mongo ("8.0.29-noble").
MONGODB_IMAGE = "docker.io/library/mongo:8.0.29"
MONGODB_PORT = 27017
MONGODB_USER = 999  # the image's mongodb user and group
# The Secret's keys and the variables the entrypoint (and the backup dump) read them as.
USERNAME_KEY = "username"
PASSWORD_KEY = "password"  # noqa: S105 (a key's name)
ROOT_ENV = {"MONGO_INITDB_ROOT_USERNAME": USERNAME_KEY, "MONGO_INITDB_ROOT_PASSWORD": PASSWORD_KEY}
# WiredTiger's cache, below the container's memory limit (mongod otherwise sizes it from the
# host's memory, not the container's).
CACHE_GB = "0.25"
PING = "db.adminCommand('ping')"


@dataclass(frozen=True)
class MongoDbClient:
    """Pods that may connect: those labelled ``app.kubernetes.io/name=<app>`` in a namespace."""

    namespace: str
    app: str


@dataclass(frozen=True)
class MongoDbArgs:
    """Inputs of ``MongoDb``: the root password, who may connect, where the data lives."""

    root_password: pulumi.Input[str]
    clients: Sequence[MongoDbClient]
    root_username: str = "root"
    database: str = "dezky"
    namespace: str = "platform"
    name: str = "mongodb"  # StatefulSet, Service and pods; the backup dump names it
    volume: str = "20Gi"

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-credentials"


def connection_uri(args: MongoDbArgs) -> pulumi.Output[str]:
    """The URI clients connect with (as the root user, database ``args.database``); a secret."""

    def uri(password: str) -> str:
        user = quote(args.root_username, safe="")
        return (
            f"mongodb://{user}:{quote(password, safe='')}@{args.host}:{MONGODB_PORT}/"
            f"{args.database}?authSource=admin"
        )

    return pulumi.Output.secret(pulumi.Output.from_input(args.root_password).apply(uri))


class MongoDb(pulumi.ComponentResource):
    """One ``mongod``: Secret, volume, headless Service, StatefulSet and NetworkPolicy."""

    statefulset: k8s.apps.v1.StatefulSet
    volume: k8s.core.v1.PersistentVolumeClaim
    uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: MongoDbArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:platform:MongoDb", name, None, opts)
        ns = _k8s.namespace(self, name, args.namespace)
        labels = {_k8s.NAME_LABEL: args.name}
        credentials = {USERNAME_KEY: args.root_username, PASSWORD_KEY: args.root_password}
        secret = _k8s.secret(
            self, f"{name}-credentials", args.secret_name, args.namespace, credentials, ns
        )
        self.volume = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata=_k8s.meta(f"{args.name}-data", args.namespace, labels),
            spec=_k8s.claim_spec(args.volume),
            opts=_k8s.keep(self, [ns]),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=_k8s.meta(args.name, args.namespace, labels),
            spec=cast(
                Any,
                {
                    "clusterIP": "None",  # headless: the name resolves to the one pod
                    "selector": labels,
                    "ports": [_port("TCP") | {"name": "mongodb", "targetPort": "mongodb"}],
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=_k8s.meta(args.name, args.namespace, labels),
            spec=cast(Any, _statefulset_spec(args, labels)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, self.volume, service]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=_k8s.meta(args.name, args.namespace, labels),
            spec=cast(Any, _policy_spec(args.clients, labels)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.uri = connection_uri(args)
        self.register_outputs({"host": args.host})


def _port(protocol: str) -> dict[str, Any]:
    return {"protocol": protocol, "port": MONGODB_PORT}


def _statefulset_spec(args: MongoDbArgs, labels: dict[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "mongod",
        "image": MONGODB_IMAGE,
        # The entrypoint runs mongod with these (and --auth, --bind_ip_all).
        "args": ["--wiredTigerCacheSizeGB", CACHE_GB],
        "ports": [{"name": "mongodb", "containerPort": MONGODB_PORT, "protocol": "TCP"}],
        "env": [_k8s.secret_env(var, args.secret_name, key) for var, key in ROOT_ENV.items()],
        "volumeMounts": [{"name": "data", "mountPath": "/data/db"}],
        # A restart after a crash replays the journal: give it time before liveness counts.
        "startupProbe": {
            "tcpSocket": {"port": "mongodb"},
            "periodSeconds": 10,
            "failureThreshold": 30,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "mongodb"},
            "periodSeconds": 20,
            "failureThreshold": 6,
        },
        "readinessProbe": {
            "exec": {"command": ["mongosh", "--quiet", "--norc", "--eval", PING]},
            "periodSeconds": 10,
            "timeoutSeconds": 10,  # mongosh starts a Node.js runtime
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "serviceName": args.name,
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": {**_k8s.PART_OF, **labels}},
            "spec": {
                # Already the image's user: its entrypoint skips the step-down from root.
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": MONGODB_USER,
                    "runAsGroup": MONGODB_USER,
                    "fsGroup": MONGODB_USER,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "terminationGracePeriodSeconds": 60,  # a clean shutdown flushes to disk
                "containers": [container],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": f"{args.name}-data"}}
                ],
            },
        },
    }


def _policy_spec(clients: Sequence[MongoDbClient], labels: dict[str, str]) -> dict[str, Any]:
    # Only the named client pods, on the MongoDB port; no egress at all (a single server
    # connects to nothing). kubectl exec (the backup dump) does not pass through the network.
    peers = [
        {
            "namespaceSelector": {"matchLabels": {_k8s.NAMESPACE_NAME_LABEL: c.namespace}},
            "podSelector": {"matchLabels": {_k8s.NAME_LABEL: c.app}},
        }
        for c in clients
    ]
    # An ingress rule with an empty "from" admits everyone: no clients, no rule.
    ingress = [{"from": peers, "ports": [_port("TCP")]}] if peers else []
    return {
        "podSelector": {"matchLabels": labels},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": [],
    }
