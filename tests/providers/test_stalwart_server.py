"""Stalwart's server settings (certificate, listeners, SystemSettings) against the fake Stalwart
over real HTTP on loopback, and ``MailServer`` under Pulumi's mock runtime."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.runtime import mocks, settings
from pulumi.runtime.rpc import UNKNOWN
from pulumi.runtime.stack import wait_for_rpcs

from components.mail_server import DEFAULT_LISTENERS, ListenerArgs, MailServer, MailServerArgs
from components.providers._http import PermanentApiError
from components.providers.stalwart import StalwartClient, StalwartSetError
from components.providers.stalwart_server import (
    CertificateProvider,
    ListenerProvider,
    SettingsProvider,
)
from tests.fakes.stalwart_server import FakeStalwart
from tests.providers.conftest import FAST_RETRY, Monitor, Recorder

ProviderT = TypeVar("ProviderT", bound=ResourceProvider)

CERT_PATH, KEY_PATH = "/etc/stalwart/tls/fullchain.pem", "/etc/stalwart/tls/privkey.pem"
CERT_INPUTS = {"certificate_path": CERT_PATH, "private_key_path": KEY_PATH}
SMTP = {"name": "smtp", "bind": ["[::]:25"], "protocol": "smtp", "use_tls": True,
        "tls_implicit": False}  # fmt: skip


def outs_of(result: Any) -> dict[str, Any]:
    assert isinstance(result.outs, dict)
    return result.outs


def configured(provider: ProviderT, fake: FakeStalwart) -> ProviderT:
    """Configure ``provider`` as the provider host does, with the namespaced stack config."""
    raw = {"stalwart:url": fake.url, "stalwart:token": fake.token, "dezky-infra:environment": "t"}
    provider.configure(ConfigureRequest(Config(raw, "dezky-infra")))
    return provider


def pem_pair(host: str = "mail.dezky.test") -> tuple[str, str]:
    """A self-signed certificate for ``host`` and its private key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.fixture
def host_files(stalwart: FakeStalwart) -> tuple[str, str]:
    """The certificate pair on the (fake) mail host, where Stalwart reads it."""
    cert, key = pem_pair()
    stalwart.registry.files.update({CERT_PATH: cert, KEY_PATH: key})
    return cert, key


def make(factory: Callable[..., ProviderT], stalwart: FakeStalwart) -> ProviderT:
    return configured(factory(http_timeout=2.0, retry=FAST_RETRY), stalwart)


# --- x:Certificate ---------------------------------------------------------------------------


def test_certificate_create_points_stalwart_at_the_files(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    result = make(CertificateProvider, stalwart).create(dict(CERT_INPUTS))

    stored = stalwart.registry.certificates[result.id]
    assert stored["certificate"] == {"@type": "File", "filePath": CERT_PATH}
    assert stored["privateKey"] == {"@type": "File", "filePath": KEY_PATH}
    outs = outs_of(result)
    assert outs["certificate_id"] == result.id
    assert outs["subject_alternative_names"] == ["mail.dezky.test"]
    assert outs["issuer"] == "CN=mail.dezky.test"
    assert outs["not_valid_after"] > f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}"
    assert (outs["certificate_path"], outs["private_key_path"]) == (CERT_PATH, KEY_PATH)
    assert "PRIVATE KEY" not in repr(outs)


def test_certificate_adopts_the_one_read_from_the_same_file(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    # What the first-install plan (plan.ndjson) made, with an old key path.
    stalwart.registry.files["/etc/stalwart/tls/old.pem"] = host_files[1]
    with StalwartClient(stalwart.url, stalwart.token) as client:
        other = client.create_object(
            "Certificate",
            {"certificate": {"@type": "Text", "value": host_files[0]},
             "privateKey": {"@type": "Text", "secret": host_files[1]}},
        )  # fmt: skip
        planned = client.create_object(
            "Certificate",
            {"certificate": {"@type": "File", "filePath": CERT_PATH},
             "privateKey": {"@type": "File", "filePath": "/etc/stalwart/tls/old.pem"}},
        )  # fmt: skip
    provider = make(CertificateProvider, stalwart)
    writes = stalwart.writes

    first = provider.create(dict(CERT_INPUTS))
    assert first.id == planned != other
    assert stalwart.writes == writes + 1  # the key path only
    assert stalwart.registry.certificates[planned]["privateKey"]["filePath"] == KEY_PATH
    second = provider.create(dict(CERT_INPUTS))
    assert (second.id, stalwart.writes) == (planned, writes + 1)
    assert len(stalwart.registry.certificates) == 2


def test_certificate_read_reports_drift_and_update_restores_the_files(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    provider = make(CertificateProvider, stalwart)
    created = provider.create(dict(CERT_INPUTS))
    # Someone pasted the PEM into the admin UI instead of the file.
    stalwart.registry.certificates[created.id]["certificate"] = {
        "@type": "Text",
        "value": host_files[0],
    }

    read = provider.read(created.id, outs_of(created))
    assert read.inputs == {"certificate_path": "", "private_key_path": KEY_PATH}
    diff = provider.diff(created.id, outs_of(read), dict(CERT_INPUTS))
    assert (diff.changes, diff.replaces) == (True, [])

    outs = outs_of(provider.update(created.id, outs_of(read), dict(CERT_INPUTS)))
    assert outs["certificate_path"] == CERT_PATH
    assert stalwart.registry.certificates[created.id]["certificate"]["@type"] == "File"

    del stalwart.registry.certificates[created.id]
    assert provider.read(created.id, outs).id == ""


def test_certificate_update_moves_to_new_files(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    provider = make(CertificateProvider, stalwart)
    created = provider.create(dict(CERT_INPUTS))
    cert, key = pem_pair("mx.dezky.test")
    stalwart.registry.files.update({"/srv/tls/cert.pem": cert, "/srv/tls/key.pem": key})
    news = {"certificate_path": "/srv/tls/cert.pem", "private_key_path": "/srv/tls/key.pem"}

    diff = provider.diff(created.id, outs_of(created), news)
    assert (diff.changes, diff.replaces, diff.stables) == (True, [], ["certificate_id"])
    outs = outs_of(provider.update(created.id, outs_of(created), news))
    assert outs["subject_alternative_names"] == ["mx.dezky.test"]
    assert outs["certificate_id"] == created.id
    assert len(stalwart.registry.certificates) == 1


@pytest.mark.parametrize(
    ("files", "refused"),
    [
        ({}, "certificate"),  # no such file on the host
        ({CERT_PATH: "not a certificate"}, "certificate"),
        (
            {KEY_PATH: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
            "privateKey",
        ),
        ({KEY_PATH: pem_pair()[1]}, "privateKey"),  # the key of another certificate
    ],
)
def test_certificate_stalwart_cannot_use_is_refused_without_leaking_the_key(
    stalwart: FakeStalwart, files: dict[str, str], refused: str
) -> None:
    cert, key = pem_pair()
    stalwart.registry.files.update({CERT_PATH: cert, KEY_PATH: key, **files})
    if not files:
        del stalwart.registry.files[CERT_PATH]

    with pytest.raises(StalwartSetError) as err:
        make(CertificateProvider, stalwart).create(dict(CERT_INPUTS))
    assert err.value.set_type == "invalidProperties"
    assert err.value.properties == (refused,)
    assert str(err.value).startswith("stalwart: x:Certificate/set could not create 'c0'")
    assert "PRIVATE KEY" not in str(err.value) and key not in str(err.value)
    assert stalwart.registry.certificates == {}


@pytest.mark.parametrize(
    ("news", "failed"),
    [
        (CERT_INPUTS, []),
        ({**CERT_INPUTS, "certificate_path": UNKNOWN}, []),
        ({**CERT_INPUTS, "certificate_path": "tls/fullchain.pem"}, ["certificate_path"]),
        ({**CERT_INPUTS, "private_key_path": "/etc/stalwart/tls/"}, ["private_key_path"]),
        ({**CERT_INPUTS, "private_key_path": "/etc/../root/key.pem"}, ["private_key_path"]),
        ({}, ["certificate_path", "private_key_path"]),
    ],
)
def test_certificate_check_wants_absolute_file_paths(
    news: dict[str, object], failed: list[str]
) -> None:
    result = CertificateProvider().check({}, dict(news))
    assert [f.property for f in result.failures] == failed


def test_certificate_delete_waits_for_the_settings_to_let_go(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    provider = make(CertificateProvider, stalwart)
    created = provider.create(dict(CERT_INPUTS))
    make(SettingsProvider, stalwart).create(
        {"default_hostname": "mail.dezky.test", "default_certificate_id": created.id}
    )

    with pytest.raises(StalwartSetError, match=r"objectIsLinked.*SystemSettings singleton"):
        provider.delete(created.id, outs_of(created))
    assert created.id in stalwart.registry.certificates

    stalwart.registry.settings["defaultCertificateId"] = None
    provider.delete(created.id, outs_of(created))
    assert stalwart.registry.certificates == {}
    provider.delete(created.id, outs_of(created))  # already gone: still a success


# --- x:NetworkListener -----------------------------------------------------------------------


def test_listener_create_then_adopt_without_a_write(stalwart: FakeStalwart) -> None:
    provider = make(ListenerProvider, stalwart)
    first = provider.create(dict(SMTP))

    stored = stalwart.registry.listeners[first.id]
    assert {k: stored[k] for k in ("name", "bind", "protocol", "useTls", "tlsImplicit")} == {
        "name": "smtp", "bind": {"[::]:25": True}, "protocol": "smtp", "useTls": True,
        "tlsImplicit": False,
    }  # fmt: skip
    assert outs_of(first) == {**SMTP, "listener_id": first.id}
    writes = stalwart.writes
    second = provider.create(dict(SMTP))
    assert (second.id, stalwart.writes, len(stalwart.registry.listeners)) == (first.id, writes, 1)


def test_listener_adopts_a_planned_one_and_fixes_what_differs(stalwart: FakeStalwart) -> None:
    with StalwartClient(stalwart.url, stalwart.token) as client:
        planned = client.create_object(
            "NetworkListener", {"name": "smtp", "bind": {"0.0.0.0:25": True}}
        )
    result = make(ListenerProvider, stalwart).create(dict(SMTP))

    assert result.id == planned
    assert stalwart.registry.listeners[planned]["bind"] == {"[::]:25": True}
    assert stalwart.registry.listeners[planned]["maxConnections"] == 8192  # left alone


def test_listener_protocol_change_is_an_update_of_the_same_object(
    stalwart: FakeStalwart,
) -> None:
    provider = make(ListenerProvider, stalwart)
    created = provider.create(dict(SMTP))
    news = {**SMTP, "protocol": "lmtp", "bind": ["[::1]:24", "127.0.0.1:24"],
            "use_tls": False}  # fmt: skip
    news = dict(provider.check(outs_of(created), news).inputs)
    assert news["bind"] == ["127.0.0.1:24", "[::1]:24"]

    diff = provider.diff(created.id, outs_of(created), news)
    assert (diff.changes, diff.replaces) == (True, [])
    outs = outs_of(provider.update(created.id, outs_of(created), news))
    assert outs == {**news, "listener_id": created.id}
    assert stalwart.registry.listeners[created.id]["protocol"] == "lmtp"


def test_listener_rename_is_a_replace_because_the_name_is_immutable(
    stalwart: FakeStalwart,
) -> None:
    provider = make(ListenerProvider, stalwart)
    created = provider.create(dict(SMTP))
    assert provider.diff(created.id, outs_of(created), {**SMTP, "name": "mx"}).replaces == ["name"]
    # Why: the server refuses to change it in place.
    with (
        StalwartClient(stalwart.url, stalwart.token) as client,
        pytest.raises(StalwartSetError, match="read-only property") as err,
    ):
        client.update_object("NetworkListener", created.id, {"name": "mx"})
    assert (err.value.set_type, err.value.properties) == ("invalidPatch", ("name",))


def test_listener_read_reports_drift_and_disappearance(stalwart: FakeStalwart) -> None:
    provider = make(ListenerProvider, stalwart)
    created = provider.create(dict(SMTP))
    stalwart.registry.listeners[created.id].update(tlsImplicit=True, bind={"[::]:2525": True})

    read = provider.read(created.id, outs_of(created))
    assert read.inputs == {**SMTP, "tls_implicit": True, "bind": ["[::]:2525"]}
    assert provider.diff(created.id, outs_of(read), dict(SMTP)).changes is True
    writes = stalwart.writes
    provider.update(created.id, outs_of(read), dict(SMTP))
    assert stalwart.writes == writes + 1
    assert stalwart.registry.listeners[created.id]["bind"] == {"[::]:25": True}

    del stalwart.registry.listeners[created.id]
    assert provider.read(created.id, {}).id == ""
    with pytest.raises(PermanentApiError, match="listener 'smtp' does not exist"):
        provider.update(created.id, {}, dict(SMTP))


def test_listener_delete_is_idempotent(stalwart: FakeStalwart) -> None:
    provider = make(ListenerProvider, stalwart)
    created = provider.create(dict(SMTP))
    provider.delete(created.id, outs_of(created))
    assert stalwart.registry.listeners == {}
    provider.delete(created.id, outs_of(created))


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({}, []),
        ({"bind": UNKNOWN, "protocol": UNKNOWN}, []),
        ({"bind": []}, ["bind"]),
        ({"bind": ["[::]"]}, ["bind"]),
        ({"bind": ["mail.dezky.test:25"]}, ["bind"]),
        ({"bind": ["[::]:70000"]}, ["bind"]),
        ({"bind": ["300.1.1.1:25"]}, ["bind"]),
        ({"protocol": "SMTP"}, ["protocol"]),
        ({"protocol": "jmap"}, ["protocol"]),
        ({"name": ""}, ["name"]),
        ({"name": "smtp in"}, ["name"]),
        ({"use_tls": "yes"}, ["use_tls"]),
        ({"use_tls": False, "tls_implicit": True}, ["tls_implicit"]),
    ],
)
def test_listener_check_validates_the_inputs(change: dict[str, object], failed: list[str]) -> None:
    result = ListenerProvider().check({}, {**SMTP, **change})
    assert [f.property for f in result.failures] == failed


def test_listener_invalid_input_past_check_is_stalwarts_error(stalwart: FakeStalwart) -> None:
    with pytest.raises(StalwartSetError) as err:
        make(ListenerProvider, stalwart).create({**SMTP, "protocol": "gopher"})
    assert (err.value.set_type, err.value.properties) == ("invalidProperties", ("protocol",))
    assert str(err.value).startswith("stalwart: x:NetworkListener/set could not create")
    assert stalwart.token not in str(err.value)


def test_listener_duplicate_name_is_a_primary_key_violation(stalwart: FakeStalwart) -> None:
    with StalwartClient(stalwart.url, stalwart.token) as client:
        client.create_object("NetworkListener", {"name": "smtp", "bind": {"[::]:25": True}})
        with pytest.raises(StalwartSetError) as err:
            client.create_object("NetworkListener", {"name": "smtp", "bind": {"[::]:26": True}})
    assert (err.value.set_type, err.value.properties) == ("primaryKeyViolation", ("name",))


# --- x:SystemSettings ------------------------------------------------------------------------


def test_settings_name_the_created_certificate_and_host(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    cert = make(CertificateProvider, stalwart).create(dict(CERT_INPUTS))
    inputs = {"default_hostname": "mail.dezky.test", "default_certificate_id": cert.id}
    provider = make(SettingsProvider, stalwart)

    result = provider.create(dict(inputs))
    assert result.id == "singleton"
    assert outs_of(result) == inputs
    assert stalwart.registry.settings["defaultHostname"] == "mail.dezky.test"
    assert stalwart.registry.settings["defaultCertificateId"] == cert.id
    assert stalwart.registry.settings["maxConnections"] == 8192  # the rest untouched
    writes = stalwart.writes
    assert outs_of(provider.update("singleton", inputs, dict(inputs))) == inputs
    assert stalwart.writes == writes  # nothing drifted: no write


def test_settings_read_drift_update_and_delete_leaves_them(
    stalwart: FakeStalwart, host_files: tuple[str, str]
) -> None:
    cert = make(CertificateProvider, stalwart).create(dict(CERT_INPUTS))
    inputs = {"default_hostname": "mail.dezky.test", "default_certificate_id": cert.id}
    provider = make(SettingsProvider, stalwart)
    provider.create(dict(inputs))
    stalwart.registry.settings["defaultHostname"] = "localhost"

    read = provider.read("singleton", dict(inputs))
    assert read.inputs == {**inputs, "default_hostname": "localhost"}
    assert provider.diff("singleton", outs_of(read), dict(inputs)).changes is True
    provider.update("singleton", outs_of(read), dict(inputs))
    assert stalwart.registry.settings["defaultHostname"] == "mail.dezky.test"

    writes = stalwart.writes
    provider.delete("singleton", dict(inputs))
    assert stalwart.writes == writes
    assert stalwart.registry.settings["defaultCertificateId"] == cert.id


def test_settings_refuse_a_certificate_that_does_not_exist(stalwart: FakeStalwart) -> None:
    provider = make(SettingsProvider, stalwart)
    with pytest.raises(PermanentApiError, match="default certificate 'b999' does not exist") as err:
        provider.create({"default_hostname": "mail.dezky.test", "default_certificate_id": "b999"})
    assert isinstance(err.value.__cause__, StalwartSetError)
    assert err.value.__cause__.set_type == "invalidForeignKey"
    assert stalwart.registry.settings["defaultHostname"] == "localhost"  # nothing half-written


def test_the_singleton_cannot_be_created_or_destroyed(stalwart: FakeStalwart) -> None:
    with StalwartClient(stalwart.url, stalwart.token) as client:
        with pytest.raises(StalwartSetError) as created:
            client.create_object("SystemSettings", {"defaultHostname": "x.example"})
        with pytest.raises(StalwartSetError) as destroyed:
            client.destroy_object("SystemSettings", "singleton")
        with pytest.raises(PermanentApiError, match="unknownMethod"):
            client.query("SystemSettings", {})
    assert (created.value.set_type, destroyed.value.set_type) == ("singleton", "forbidden")


@pytest.mark.parametrize(
    ("news", "failed"),
    [
        ({"default_hostname": "mail.dezky.test", "default_certificate_id": "b1"}, []),
        ({"default_hostname": "mail.dezky.test", "default_certificate_id": UNKNOWN}, []),
        ({"default_hostname": "localhost", "default_certificate_id": "b1"}, ["default_hostname"]),
        ({"default_hostname": "mail.dezky.test", "default_certificate_id": ""},
         ["default_certificate_id"]),
    ],
)  # fmt: skip
def test_settings_check(news: dict[str, object], failed: list[str]) -> None:
    assert [f.property for f in SettingsProvider().check({}, dict(news)).failures] == failed


def test_without_config_the_server_providers_name_the_missing_keys() -> None:
    for provider, props in ((CertificateProvider(), CERT_INPUTS), (ListenerProvider(), SMTP)):
        with pytest.raises(PermanentApiError, match="stalwart:url and stalwart:token"):
            provider.create(dict(props))


# --- MailServer under the mock runtime -------------------------------------------------------

CERTIFICATE = "pulumi-python:dynamic/stalwart:Certificate"
LISTENER = "pulumi-python:dynamic/stalwart:NetworkListener"
SETTINGS = "pulumi-python:dynamic/stalwart:SystemSettings"


class AllRecorder(Recorder):
    """Keeps every registration, not only the last one per type."""

    def __init__(self) -> None:
        super().__init__({CERTIFICATE: {"certificate_id": "b7"}, LISTENER: {"listener_id": "b9"}})
        self.all: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.all.append((args.typ, args.name, dict(args.inputs)))
        return super().new_resource(args)


class AllMonitor(Monitor):
    """Keeps the options and dependencies of every registration, by resource name."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.by_name: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.by_name[request.name] = {
            "protect": request.protect,
            "dependencies": list(request.dependencies),
        }
        return super().RegisterResource(request)


def render(args: MailServerArgs) -> tuple[AllRecorder, AllMonitor, dict[str, Any]]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    recorder = AllRecorder()
    monitor = AllMonitor(recorder)
    mocks.set_mocks(recorder, project="dezky-infra", stack="platform", monitor=monitor)
    settings.SETTINGS.feature_support["parameterization"] = True
    seen: dict[str, Any] = {}
    try:
        component = MailServer("mail", args)
        component.certificate_id.apply(lambda v: seen.setdefault("certificate_id", v))
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return recorder, monitor, seen


def test_mail_server_declares_one_listener_per_default_listener() -> None:
    recorder, monitor, seen = render(MailServerArgs("mail.dezky.test"))

    listeners = {name: inputs for typ, name, inputs in recorder.all if typ == LISTENER}
    assert sorted(listeners) == sorted(f"mail-listener-{x.name}" for x in DEFAULT_LISTENERS)
    wire = {
        i["name"]: (i["bind"], i["protocol"], i["use_tls"], i["tls_implicit"])
        for i in listeners.values()
    }
    assert wire == {
        "smtp": (["[::]:25"], "smtp", True, False),
        "submissions": (["[::]:465"], "smtp", True, True),
        "submission": (["[::]:587"], "smtp", True, False),
        "imaptls": (["[::]:993"], "imap", True, True),
        "http": (["[::]:8080"], "http", False, False),
    }
    (cert,) = [i for typ, _, i in recorder.all if typ == CERTIFICATE]
    assert (cert["certificate_path"], cert["private_key_path"]) == (CERT_PATH, KEY_PATH)
    (conf,) = [i for typ, _, i in recorder.all if typ == SETTINGS]
    assert conf["default_hostname"] == "mail.dezky.test"
    assert conf["default_certificate_id"] == "b7"  # the certificate's output, not a guess
    assert seen == {"certificate_id": "b7"}

    def on_certificate(name: str) -> bool:
        suffix = f"MailServer${CERTIFICATE}::mail-certificate"
        return any(dep.endswith(suffix) for dep in monitor.by_name[name]["dependencies"])

    assert on_certificate("mail-settings")
    assert on_certificate("mail-listener-smtp") and on_certificate("mail-listener-imaptls")
    assert not on_certificate("mail-listener-http")
    assert monitor.by_name["mail-listener-http"]["protect"] is True
    assert monitor.by_name["mail-listener-smtp"]["protect"] is False


def test_mail_server_with_own_listeners_and_paths() -> None:
    args = MailServerArgs(
        "mx.dezky.test",
        certificate_path="/srv/tls/cert.pem",
        private_key_path="/srv/tls/key.pem",
        listeners=[ListenerArgs("lmtp", "lmtp", 24, use_tls=False, hosts=("127.0.0.1", "[::1]"))],
    )
    recorder, _, _ = render(args)
    (listener,) = [i for typ, _, i in recorder.all if typ == LISTENER]
    assert listener["bind"] == ["127.0.0.1:24", "[::1]:24"]
    assert listener["use_tls"] is False
    (cert,) = [i for typ, _, i in recorder.all if typ == CERTIFICATE]
    assert cert["certificate_path"] == "/srv/tls/cert.pem"


def test_mail_server_refuses_duplicate_listener_names() -> None:
    with pytest.raises(ValueError, match="unique: smtp"):
        MailServerArgs("mx.dezky.test", listeners=[DEFAULT_LISTENERS[0], DEFAULT_LISTENERS[0]])
