"""The Stalwart server's settings, declared: its TLS certificate, listeners and default host name.

In Stalwart 0.16 these live in the server's datastore (JMAP registry objects), so the Ansible
role only writes a first-install plan; ``MailServer`` keeps them as declared from then on. The
defaults are the listeners of that plan (``ansible/roles/stalwart/defaults/main.yml``
``stalwart_listeners``): SMTP 25, submissions 465 (implicit TLS), submission 587, IMAPS 993
(implicit TLS) and HTTP 8080 (no TLS; the cluster ingress ends TLS for JMAP and the admin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components.providers import stalwart_server as server

DEFAULT_CERTIFICATE_PATH = "/etc/stalwart/tls/fullchain.pem"
DEFAULT_PRIVATE_KEY_PATH = "/etc/stalwart/tls/privkey.pem"


@dataclass(frozen=True)
class ListenerArgs:
    """One listener: ``name`` (unique; a rename replaces it), ``protocol`` (smtp, imap, http, ...),
    ``port`` on every address of ``hosts``; TLS on unless the protocol is http."""

    name: str
    protocol: str
    port: int
    tls_implicit: bool = False
    use_tls: bool | None = None
    """None: TLS for every protocol but http."""
    hosts: tuple[str, ...] = ("[::]",)
    """Addresses without the port: ``[::]`` (all, dual stack), ``0.0.0.0``, ``[2001:db8::1]``."""

    @property
    def bind(self) -> list[str]:
        return [f"{host}:{self.port}" for host in self.hosts]

    @property
    def tls(self) -> bool:
        return self.protocol != "http" if self.use_tls is None else self.use_tls


DEFAULT_LISTENERS: tuple[ListenerArgs, ...] = (
    ListenerArgs("smtp", "smtp", 25),
    ListenerArgs("submissions", "smtp", 465, tls_implicit=True),
    ListenerArgs("submission", "smtp", 587),
    ListenerArgs("imaptls", "imap", 993, tls_implicit=True),
    ListenerArgs("http", "http", 8080),
)


@dataclass(frozen=True)
class MailServerArgs:
    """Inputs of ``MailServer``: the host name and the PEM files on the mail host."""

    hostname: str
    certificate_path: str = DEFAULT_CERTIFICATE_PATH
    private_key_path: str = DEFAULT_PRIVATE_KEY_PATH
    listeners: Sequence[ListenerArgs] = field(default=DEFAULT_LISTENERS)

    def __post_init__(self) -> None:
        names = [listener.name for listener in self.listeners]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"listener names must be unique: {', '.join(duplicates)}")


class MailServer(pulumi.ComponentResource):
    """Stalwart's certificate, one ``stalwart:NetworkListener`` per listener and its settings.

    The settings name the certificate's id, so they wait for it (``depends_on``), and so do the
    TLS listeners. HTTP listeners carry the management API this very program talks to:
    they are protected, so dropping one from the list cannot cut the program off.
    """

    certificate: server.StalwartCertificate
    listeners: dict[str, server.StalwartListener]
    settings: server.StalwartSettings
    certificate_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: MailServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:mail:MailServer", name, None, opts)
        self.certificate = server.StalwartCertificate(
            f"{name}-certificate",
            certificate_path=args.certificate_path,
            private_key_path=args.private_key_path,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.certificate_id = self.certificate.certificate_id
        self.listeners = {
            listener.name: server.StalwartListener(
                f"{name}-listener-{listener.name}",
                name=listener.name,
                bind=listener.bind,
                protocol=listener.protocol,
                use_tls=listener.tls,
                tls_implicit=listener.tls_implicit,
                opts=self._listener_options(listener),
            )
            for listener in args.listeners
        }
        self.settings = server.StalwartSettings(
            f"{name}-settings",
            default_hostname=args.hostname,
            default_certificate_id=self.certificate_id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.certificate]),
        )
        self.register_outputs(
            {
                "certificate_id": self.certificate_id,
                "listener_ids": {k: v.listener_id for k, v in self.listeners.items()},
            }
        )

    def _listener_options(self, listener: ListenerArgs) -> pulumi.ResourceOptions:
        if listener.protocol == "http":
            return pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        if listener.tls:
            return pulumi.ResourceOptions(parent=self, depends_on=[self.certificate])
        return pulumi.ResourceOptions(parent=self)
