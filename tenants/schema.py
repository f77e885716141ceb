"""Files generated from the models: the JSON Schema (editors validate as people type) and the
field reference in docs/. A test fails when either is stale; ``make schema`` rewrites both."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from tenants.model import RESERVED_SLUGS, Admin, Quota, Tenant
from tenants.plans import PLANS

SCHEMA_PATH = Path(__file__).with_name("tenant.schema.json")
REFERENCE_PATH = Path(__file__).resolve().parent.parent / "docs" / "tenant-spec.md"


def generate() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Tenant.model_json_schema(),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        required = "yes" if info.is_required() else "no"
        rows.append(f"| `{prefix}{name}` | {required} | {info.description or ''} |")
    return rows


def reference() -> str:
    plans = [
        f"| `{plan.value}` | {d.files_gb} | {d.mail_gb} | {d.cpu_cores} | {d.memory_gib} "
        f"| {d.max_pods} | {d.mfa.value} |"
        for plan, d in PLANS.items()
    ]
    lines = [
        "# Tenant file reference (version 1)",
        "",
        "Generated from `tenants/model.py` by `make schema`; do not edit by hand.",
        "One file per tenant: `tenants/<slug>.yaml`. Unknown keys are errors. Editors that",
        "understand `# yaml-language-server: $schema=tenant.schema.json` validate as you type.",
        "",
        "| field | required | meaning |",
        "|---|---|---|",
        *_fields(Tenant),
        *_fields(Admin, "admins[]."),
        *_fields(Quota, "quota."),
        "",
        "## Plans",
        "",
        "| plan | files GB | mail GB | CPU cores | memory GiB | pods | MFA |",
        "|---|---|---|---|---|---|---|",
        *plans,
        "",
        "## Reserved slugs",
        "",
        ", ".join(f"`{s}`" for s in sorted(RESERVED_SLUGS)),
        "",
    ]
    return "\n".join(lines)
