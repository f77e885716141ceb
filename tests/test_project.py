"""Promises about the project itself: generated files in sync, packages from this checkout."""

from __future__ import annotations

from pathlib import Path

import automation
import components
import stacks
import tenants
from tenants import schema
from tests.conftest import REPO


def test_json_schema_is_in_sync_with_the_models() -> None:
    committed = schema.SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema.generate(), "stale: run `make schema` and commit the result"
    reference = schema.REFERENCE_PATH.read_text(encoding="utf-8")
    assert reference == schema.reference(), "stale: run `make schema` and commit the result"


def test_packages_are_imported_from_this_checkout() -> None:
    # components/ and automation/ are generic names: a same-named installed package would
    # silently replace ours (and be pickled into state by the dynamic providers).
    for package in (automation, components, stacks, tenants):
        assert package.__file__ is not None
        assert REPO in Path(package.__file__).resolve().parents


def test_example_tenants_are_valid_and_as_documented() -> None:
    from tenants.loader import load_tenants, tenant_paths

    files = load_tenants(tenant_paths(REPO / "tenants"), "dezky.eu")
    by_slug = {f.tenant.slug: f.tenant for f in files}
    assert set(by_slug) == {"acme", "dezky"}
    assert (by_slug["acme"].plan, len(by_slug["acme"].mail_domains)) == ("pro", 1)
    assert len(by_slug["acme"].admins) == 1
