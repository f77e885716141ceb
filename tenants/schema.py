"""The JSON Schema of tenant files, generated from the models (editors validate as you type)."""

from __future__ import annotations

import json
from pathlib import Path

from tenants.model import Tenant

SCHEMA_PATH = Path(__file__).with_name("tenant.schema.json")


def generate() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Tenant.model_json_schema(),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
