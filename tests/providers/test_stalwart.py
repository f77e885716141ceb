"""DomainProvider against the fake Stalwart over real HTTP on loopback."""

from __future__ import annotations

from typing import Any

import dill
import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.providers.stalwart import (
    DomainProvider,
    PermanentApiError,
    RetryableApiError,
    StalwartClient,
    StalwartSetError,
)
from tests.fakes.stalwart_server import FakeStalwart
from tests.providers.conftest import FAST_RETRY, configured, state_payload

INPUTS = {"domain": "acme.example", "tenant_slug": "acme"}


def outs_of(result: Any) -> dict[str, Any]:
    """The ``outs`` of a Create/Read/UpdateResult, which the SDK types as optional."""
    assert isinstance(result.outs, dict)
    return result.outs


def test_create_waits_for_dkim_and_reports_the_records_to_publish(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    result = provider.create(dict(INPUTS))

    domain = stalwart.registry.domains[result.id]
    assert domain["name"] == "acme.example"
    assert domain["description"] == "dezky-infra tenant acme"
    outs = outs_of(result)
    keys = {k["selector"]: k for k in stalwart.registry.dkim.values()}
    assert outs["domain_id"] == result.id
    assert outs["dkim_selectors"] == sorted(keys) and len(keys) == 2
    by_kind: dict[str, list[dict[str, str]]] = {}
    for record in outs["dns_records"]:
        by_kind.setdefault(record["kind"], []).append(record)
    assert by_kind["mx"] == [
        {"kind": "mx", "name": "acme.example.", "type": "MX", "value": "10 mail.dezky.test."}
    ]
    assert [r["value"] for r in by_kind["spf"]] == ["v=spf1 mx -all"]
    assert by_kind["dmarc"][0]["name"] == "_dmarc.acme.example."
    assert "rua=mailto:postmaster@acme.example" in by_kind["dmarc"][0]["value"]
    for record in by_kind["dkim"]:
        key = keys[record["name"].split("._domainkey.")[0]]
        # The RSA key is longer than 255 bytes: split in the zone file, joined again here.
        assert record["value"].endswith(f"p={key['publicKey']}")
    assert set(by_kind) == {"mx", "spf", "dkim", "dmarc"}  # SRV, CNAME, TLS-RPT left out
    assert "PRIVATE KEY" not in repr(outs)


def test_dkim_keys_appear_only_after_the_background_task(stalwart: FakeStalwart) -> None:
    stalwart.registry.dkim_delay = 0.3
    with StalwartClient(stalwart.url, stalwart.token, retry=FAST_RETRY) as client:
        domain_id = client.create_domain({"name": "late.example"})
        assert client.dkim_ids(domain_id) == []
    provider = configured(DomainProvider(poll_interval=0.02), stalwart.url, stalwart.token)
    outs = outs_of(provider.read(domain_id, {}))
    assert outs["dkim_selectors"] == []
    assert [r["kind"] for r in outs["dns_records"]] == ["mx", "spf", "dmarc"]


def test_second_create_adopts_the_domain_without_any_write(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    first = provider.create(dict(INPUTS))
    writes = stalwart.writes
    second = provider.create(dict(INPUTS))

    assert writes == 1
    assert stalwart.writes == writes
    assert second.id == first.id
    assert second.outs == first.outs
    assert len(stalwart.registry.domains) == 1


def test_create_adopts_an_unmarked_domain_but_not_another_tenants(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    stalwart.registry.domains["b900"] = {"name": "acme.example", "aliases": {}, "description": None,
                                         "dkimManagement": {"@type": "Manual"}}  # fmt: skip
    assert provider.create(dict(INPUTS)).id == "b900"
    assert stalwart.registry.domains["b900"]["description"] == "dezky-infra tenant acme"

    with pytest.raises(PermanentApiError, match="belongs to tenant 'acme'"):
        provider.create({"domain": "acme.example", "tenant_slug": "other"})
    assert stalwart.writes == 1


def test_dkim_deadline_expiry_is_retryable_and_the_next_run_adopts(
    stalwart: FakeStalwart,
) -> None:
    stalwart.registry.dkim_delay = None  # the server's task never runs
    provider = DomainProvider(dkim_timeout=0.2, poll_interval=0.02, retry=FAST_RETRY)
    configured(provider, stalwart.url, stalwart.token)

    with pytest.raises(
        RetryableApiError, match=r"^stalwart: DKIM keys of 'acme.example' not ready"
    ):
        provider.create(dict(INPUTS))

    (domain_id,) = stalwart.registry.domains
    for algorithm in ("Dkim1Ed25519Sha256", "Dkim1RsaSha256"):
        stalwart.registry.add_dkim(domain_id, algorithm)
    writes = stalwart.writes
    assert provider.create(dict(INPUTS)).id == domain_id
    assert stalwart.writes == writes


@pytest.mark.parametrize(
    ("news", "changes", "replaces"),
    [
        (INPUTS, False, []),
        ({**INPUTS, "domain": "acme.example.org"}, True, ["domain"]),
        ({**INPUTS, "domain": UNKNOWN}, True, ["domain"]),
        ({**INPUTS, "tenant_slug": "acme-gmbh"}, True, []),
    ],
)
def test_diff_replaces_on_rename_and_updates_otherwise(
    news: dict[str, str], changes: bool, replaces: list[str]
) -> None:
    olds = {**INPUTS, "domain_id": "b1", "dkim_selectors": [], "dns_records": []}
    result = DomainProvider().diff("b1", olds, {**news, "__provider": "x"})
    assert result.changes is changes
    assert result.replaces == replaces
    assert result.delete_before_replace is False


@pytest.mark.parametrize(
    ("news", "failed"),
    [
        (INPUTS, []),
        ({"domain": UNKNOWN, "tenant_slug": "acme"}, []),
        ({"domain": "Acme.example", "tenant_slug": "acme"}, ["domain"]),
        ({"domain": "acme.example.", "tenant_slug": "acme"}, ["domain"]),
        ({"domain": "localhost", "tenant_slug": "acme"}, ["domain"]),
        ({"domain": "acme.example", "tenant_slug": "Acme--x"}, ["tenant_slug"]),
        ({"tenant_slug": 7}, ["domain", "tenant_slug"]),
    ],
)
def test_check_validates_domain_and_slug(news: dict[str, object], failed: list[str]) -> None:
    result = DomainProvider().check({}, dict(news))
    assert [f.property for f in result.failures] == failed
    assert result.inputs == news


def test_read_reports_out_of_band_changes_as_drift(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    created = provider.create(dict(INPUTS))
    domain = stalwart.registry.domains[created.id]

    domain["description"] = "edited by hand"
    read = provider.read(created.id, outs_of(created))
    assert outs_of(read)["tenant_slug"] == ""
    assert read.inputs == {"domain": "acme.example", "tenant_slug": ""}
    diff = provider.diff(created.id, outs_of(read), dict(INPUTS))
    assert (diff.changes, diff.replaces) == (True, [])

    domain["name"] = "renamed.example"
    read = provider.read(created.id, outs_of(created))
    assert outs_of(read)["domain"] == "renamed.example"
    assert provider.diff(created.id, outs_of(read), dict(INPUTS)).replaces == ["domain"]

    del stalwart.registry.domains[created.id]
    gone = provider.read(created.id, outs_of(created))
    assert gone.id == ""


def test_update_writes_only_what_drifted(stalwart: FakeStalwart, provider: DomainProvider) -> None:
    created = provider.create(dict(INPUTS))
    stalwart.registry.domains[created.id]["description"] = "edited by hand"
    writes = stalwart.writes

    olds = outs_of(provider.read(created.id, {}))
    outs = outs_of(provider.update(created.id, olds, dict(INPUTS)))
    assert stalwart.registry.domains[created.id]["description"] == "dezky-infra tenant acme"
    assert outs["tenant_slug"] == "acme"
    assert stalwart.writes == writes + 1

    provider.update(created.id, outs, dict(INPUTS))
    assert stalwart.writes == writes + 1


def test_delete_removes_dkim_keys_before_the_domain(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    created = provider.create(dict(INPUTS))
    with (
        StalwartClient(stalwart.url, stalwart.token) as client,
        pytest.raises(StalwartSetError) as linked,
    ):
        client.destroy_domain(created.id)
    assert linked.value.set_type == "objectIsLinked"
    assert {obj for obj, _ in linked.value.linked} == {"DkimSignature"}

    provider.delete(created.id, outs_of(created))
    assert stalwart.registry.domains == {}
    assert stalwart.registry.dkim == {}
    provider.delete(created.id, outs_of(created))  # already gone: still a success


def test_delete_refuses_while_accounts_use_the_domain(
    stalwart: FakeStalwart, provider: DomainProvider
) -> None:
    created = provider.create(dict(INPUTS))
    stalwart.registry.links[created.id] = [("Account", "b77")]

    with pytest.raises(StalwartSetError, match=r"objectIsLinked.*Account b77") as err:
        provider.delete(created.id, {})
    assert str(err.value).startswith("stalwart: ")
    assert created.id in stalwart.registry.domains


def test_without_config_the_provider_names_the_missing_keys() -> None:
    with pytest.raises(PermanentApiError, match="stalwart:url and stalwart:token"):
        DomainProvider().create(dict(INPUTS))


def test_pickled_provider_carries_no_credentials_and_is_configured_again(
    stalwart: FakeStalwart,
) -> None:
    provider = DomainProvider(dkim_timeout=7.0, poll_interval=0.01)
    configured(provider, stalwart.url, stalwart.token)
    payload = state_payload(provider)

    assert stalwart.token.encode() not in payload
    assert stalwart.url.encode() not in payload
    assert b"components.providers.stalwart" in payload  # by reference, not by value
    restored = dill.loads(payload)  # noqa: S301 - our own payload
    assert isinstance(restored, DomainProvider)
    assert restored.dkim_timeout == 7.0
    with pytest.raises(PermanentApiError, match="stalwart:url"):
        restored.read("b1", {})
    # What the provider host does next (pulumi/dynamic/__main__.py get_provider): configure.
    configured(restored, stalwart.url, stalwart.token)
    assert restored.create(dict(INPUTS)).id in stalwart.registry.domains
