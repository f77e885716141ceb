"""Count the upstream API calls the dynamic providers make, on the loopback fakes.

Run it from the repository root (a few seconds):

    .venv/bin/python bench/providers.py [--groups-exist] [--out FILE]

One tenant (2 mail domains, 1 file space; its inputs come from a tenant file through
``stacks/mapping.py``, as the tenant stack builds them) against ``FakeStalwart`` and
``FakeOcis`` of ``tests/fakes``, served on 127.0.0.1; the providers are configured with
credentials as ``tests/providers/conftest.py`` does (``configured``: the namespaced stack
config handed to ``configure``). Per scenario and system: HTTP ``requests`` that reached the
fake, ``writes`` (Stalwart: ``x:*/set`` method calls; OCIS: POST/PATCH/DELETE), the calls by
method/route, and the wall time.

1. ``create``: the tenant from nothing. ``DomainProvider.create`` of both domains (Stalwart's
   DKIM task runs ``--dkim-delay`` after a create; the provider polls every
   ``--poll-interval``, so the number of DKIM polls depends on their ratio), then
   ``SpaceProvider.create``. The tenant's OCIS groups do not exist yet (group sync from the
   IdP makes them only at a member's first login), so the provider creates them;
   ``--groups-exist`` adds them to the fake beforehand, as the provider tests do.
2. ``no_change_up``: what the engine calls on a dynamic provider when inputs are unchanged:
   ``check`` and ``diff`` with the state's inputs/outputs and the same program inputs (each
   including the serialized ``__provider``), once for the preview that ``up`` runs first and
   once for the ``up`` itself (automation/runner.py). Expected: no HTTP at all.
3. ``refresh``: ``read`` of each resource with its state outputs (also what ``drift`` does).
   Expected: reads only.

``targets_met``: the no-change up and the refresh make 0 writes; ``checks``: the no-change up
makes no request at all and reports no change, the refresh sees no drift. One JSON document goes to
stdout (and to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes is not an installed package
    sys.path.insert(0, str(ROOT))

from pulumi.dynamic import ResourceProvider  # noqa: E402
from pulumi.dynamic.dynamic import serialize_provider  # noqa: E402

from components.files import GB  # noqa: E402
from components.providers import ocis  # noqa: E402
from components.providers.ocis import OcisClient, SpaceProvider  # noqa: E402
from components.providers.stalwart import DomainProvider, StalwartClient  # noqa: E402
from stacks import mapping  # noqa: E402
from tenants.loader import parse_tenant  # noqa: E402
from tests.fakes.http_fake import LoopbackFake, running  # noqa: E402
from tests.fakes.ocis_server import FakeOcis  # noqa: E402
from tests.fakes.stalwart_server import FakeStalwart  # noqa: E402
from tests.providers.conftest import FAST_RETRY, configured  # noqa: E402

TENANT = """\
slug: acme
name: Acme Handels GmbH
plan: pro
mail_domains:
  - acme-handel.de
  - acme-shop.de
admins:
  - email: anna.schmidt@acme-handel.de
    name: Anna Schmidt
"""
PREVIEW_AND_UP = 2  # `up` previews first (guard rails), then updates: check+diff run twice


class Counted:
    """The counters of one fake, read before and after a scenario."""

    def __init__(self, fake: LoopbackFake) -> None:
        self.fake = fake
        self._requests = fake.requests
        self._calls = Counter(fake.calls)
        self._writes = fake.writes

    def result(self) -> dict[str, Any]:
        calls = Counter(self.fake.calls)
        calls.subtract(self._calls)
        return {
            "requests": self.fake.requests - self._requests,
            "writes": self.fake.writes - self._writes,
            "calls": {name: n for name, n in sorted(calls.items()) if n},
        }


@contextmanager
def scenario(
    results: dict[str, Any], name: str, fakes: dict[str, LoopbackFake]
) -> Iterator[dict[str, Any]]:
    """Count what the body makes each fake do; ``notes`` (yielded) go into the result too."""
    before = {system: Counted(fake) for system, fake in fakes.items()}
    notes: dict[str, Any] = {}
    started = time.perf_counter()
    yield notes
    wall = time.perf_counter() - started
    results[name] = {
        **{system: counted.result() for system, counted in before.items()},
        "wall_ms": round(1000 * wall, 1),
        **notes,
    }


def inputs_of_tenant() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Domain and Space inputs of the tenant stack (stacks/tenant.py via stacks/mapping.py)."""
    tenant = parse_tenant(TENANT, "acme.yaml").tenant
    domains = [
        {"domain": a.domain, "tenant_slug": a.tenant_slug} for a in mapping.mail_args(tenant)
    ]
    files = mapping.files_args(tenant)
    space = {
        "name": ocis.space_name(files.display_name),
        "tenant_slug": files.tenant_slug,
        "quota_bytes": files.quota_gb * GB,
        "member_group": files.member_group,
        "manager_group": files.manager_group,
        "enabled": files.enabled,
        "tenant_status": files.tenant_status,
        "purge": files.purge,
    }
    return domains, space


def with_provider(provider: ResourceProvider, props: dict[str, Any]) -> dict[str, Any]:
    """Properties as the engine hands them to a dynamic provider: with ``__provider``."""
    return {**props, "__provider": serialize_provider(provider)}


def no_change(
    provider: ResourceProvider, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]
) -> bool:
    """``check`` then ``diff`` as the engine calls them; True when they report no change."""
    news = with_provider(provider, inputs)
    checked = provider.check(with_provider(provider, inputs), news)
    if checked.failures:
        raise RuntimeError(f"check failed: {checked.failures}")
    diff = provider.diff(id_, with_provider(provider, outputs), dict(checked.inputs or news))
    return not diff.changes and not diff.replaces


def client_setup_ms(fakes: dict[str, LoopbackFake], times: int = 5) -> dict[str, float]:
    """Median ms to open and close one vendor client, as every provider operation does."""
    clients = {"stalwart": StalwartClient, "ocis": OcisClient}
    medians = {}
    for system, fake in fakes.items():
        walls = []
        for _ in range(times):
            started = time.perf_counter()
            clients[system](fake.url, fake.token, timeout=2.0, retry=FAST_RETRY).close()
            walls.append(time.perf_counter() - started)
        medians[system] = round(1000 * statistics.median(walls), 1)
    return medians


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float]]:
    """The three scenarios' counts, and what opening one client costs per system."""
    domains, space = inputs_of_tenant()
    stalwart_fake = FakeStalwart()
    stalwart_fake.registry.dkim_delay = args.dkim_delay
    with running(stalwart_fake) as stalwart, running(FakeOcis()) as files:
        if args.groups_exist:
            files.registry.add_group(space["member_group"])
            files.registry.add_group(space["manager_group"])
        fakes: dict[str, LoopbackFake] = {"stalwart": stalwart, "ocis": files}
        mail = configured(
            DomainProvider(
                dkim_timeout=5.0,
                poll_interval=args.poll_interval,
                http_timeout=2.0,
                retry=FAST_RETRY,
            ),
            stalwart.url,
            stalwart.token,
        )
        spaces = configured(
            SpaceProvider(http_timeout=2.0, retry=FAST_RETRY), files.url, files.token
        )
        results: dict[str, Any] = {}
        state: list[tuple[ResourceProvider, str, dict[str, Any], dict[str, Any]]] = []

        with scenario(results, "create", fakes) as notes:
            for props in domains:
                created = mail.create(dict(props))
                state.append((mail, str(created.id), props, dict(created.outs or {})))
            made = spaces.create(dict(space))
            state.append((spaces, str(made.id), space, dict(made.outs or {})))
            notes["resources"] = len(state)
            notes["dkim_selectors"] = [len(outs["dkim_selectors"]) for _, _, _, outs in state[:-1]]
            notes["ocis_groups_existed"] = args.groups_exist

        with scenario(results, "no_change_up", fakes) as notes:
            unchanged = [
                no_change(provider, id_, inputs, outputs)
                for _ in range(PREVIEW_AND_UP)
                for provider, id_, inputs, outputs in state
            ]
            notes["provider_calls"] = {"check": len(unchanged), "diff": len(unchanged)}
            notes["all_unchanged"] = all(unchanged)

        with scenario(results, "refresh", fakes) as notes:
            drifted = []
            for provider, id_, inputs, outputs in state:
                read = provider.read(id_, with_provider(provider, outputs))
                if read.id != id_ or any((read.outs or {}).get(k) != outputs[k] for k in inputs):
                    drifted.append(id_)
            notes["provider_calls"] = {"read": len(state)}
            notes["drifted"] = drifted
        # Each poll round before the keys exist costs 2 requests (x:Domain/get + query).
        polls = results["create"]["stalwart"]["calls"].get("x:DkimSignature/query", 0)
        results["create"]["dkim_poll_rounds"] = polls
        setup = client_setup_ms(fakes)
    return results, setup


def per_resource(results: dict[str, Any], resources: dict[str, int]) -> dict[str, Any]:
    """Requests per resource and scenario, the figure that scales with the fleet."""
    return {
        name: {
            system: round(result[system]["requests"] / count, 2)
            for system, count in resources.items()
        }
        for name, result in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--dkim-delay", type=float, default=0.05, help="seconds until the fake makes DKIM keys"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.02, help="the provider's DKIM poll interval"
    )
    parser.add_argument(
        "--groups-exist", action="store_true", help="the tenant's OCIS groups exist beforehand"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    results, setup = run(args)
    targets: dict[str, Callable[[], bool]] = {
        "no-change up makes 0 writes": lambda: all(
            results["no_change_up"][s]["writes"] == 0 for s in ("stalwart", "ocis")
        ),
        "refresh makes 0 writes": lambda: all(
            results["refresh"][s]["writes"] == 0 for s in ("stalwart", "ocis")
        ),
    }
    checks: dict[str, Callable[[], bool]] = {
        "no-change up makes 0 requests": lambda: all(
            results["no_change_up"][s]["requests"] == 0 for s in ("stalwart", "ocis")
        ),
        "no-change up reports no change": lambda: bool(results["no_change_up"]["all_unchanged"]),
        "refresh sees no drift": lambda: not results["refresh"]["drifted"],
    }
    document = {
        "python": platform.python_version(),
        "tenant": {"mail_domains": 2, "file_spaces": 1},
        "dkim_delay_s": args.dkim_delay,
        "poll_interval_s": args.poll_interval,
        "scenarios": results,
        "requests_per_resource": per_resource(results, {"stalwart": 2, "ocis": 1}),
        # Not an API call: each create/read opens a client (an httpx.Client and its SSL
        # context, even for http://); this is the wall time that costs, per operation.
        "client_setup_ms": setup,
        "targets_met": {name: check() for name, check in targets.items()},
        "checks": {name: check() for name, check in checks.items()},
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
