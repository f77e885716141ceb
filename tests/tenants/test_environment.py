"""Environment files: the platform-services section is validated with errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenants.environment import load_environment
from tenants.problems import SpecError
from tests.conftest import REPO

PROD = (REPO / "environments" / "prod.yaml").read_text(encoding="utf-8")
DEV = (REPO / "environments" / "dev.yaml").read_text(encoding="utf-8")


def _problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "env.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_environment(path)
    return [(p.field, p.message) for p in caught.value.problems]


def test_both_environments_are_valid_and_derive_host_names() -> None:
    prod = load_environment(REPO / "environments" / "prod.yaml")
    dev = load_environment(REPO / "environments" / "dev.yaml")
    assert prod.hostnames.auth == "auth.dezky.eu" and prod.hostnames.files == "files.dezky.eu"
    assert dev.hostnames.office == "office.dezky.local"
    assert prod.services is not None and prod.services.object_storage is not None
    assert prod.services.object_storage.region == "fsn1"
    assert dev.services is not None and dev.services.object_storage is None
    assert dev.hetzner is None


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("    acme_email: ops@dezky.eu\n", "", "services.tls.acme_email", "required"),
        ("acme_email: ops@dezky.eu", "acme_email: not-an-address", "services.tls.acme_email",
         "email"),
        ("issuer: letsencrypt", "issuer: lets-encrypt", "services.tls.issuer", "letsencrypt"),
        ("region: fsn1", "region: us-east-1", "services.object_storage.region", "fsn1"),
        ("https://fsn1.your-objectstorage.com", "https://nbg1.your-objectstorage.com",
         "services.object_storage.endpoint", "region fsn1"),
        ("https://fsn1.your-objectstorage.com", "http://fsn1.your-objectstorage.com",
         "services.object_storage.endpoint", "https"),
        ("bucket: dezky-files-prod", "bucket: Dezky_Files", "services.object_storage.bucket",
         "pattern"),
        ("portal:1.0.0", "portal:latest", "services.apps.portal.image", "not pinned"),
        ("operator-portal:1.0.0", "operator-portal", "services.apps.operator_portal.image",
         "image reference"),
        ("platform-api:1.0.0\n", "platform-api:1.0.0\n      env: {MONGODB_URI: mongodb://x}\n",
         "services.apps.platform_api", "platform secret"),
        ("platform-api:1.0.0\n", "platform-api:1.0.0\n      env: {bad-name: x}\n",
         "services.apps.platform_api.env", "environment variable"),
        ("base_domain: dezky.eu", "base_domain: dezky.local", "services", "public DNS"),
    ],
)  # fmt: skip
def test_bad_services_sections_point_at_the_field(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    assert old in PROD
    problems = _problems(tmp_path, PROD.replace(old, new, 1))
    assert any(f == field and words in m for f, m in problems), problems


def test_self_signed_takes_no_acme_email(tmp_path: Path) -> None:
    text = DEV.replace(
        "    issuer: self-signed\n", "    issuer: self-signed\n    acme_email: a@b.de\n"
    )
    assert _problems(tmp_path, text) == [
        ("services.tls.acme_email", "Value error, only used with issuer letsencrypt; remove it")
    ]


def test_the_problem_points_at_the_line(tmp_path: Path) -> None:
    text = PROD.replace("portal:1.0.0", "portal:latest", 1)
    path = tmp_path / "env.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_environment(path)
    (problem,) = caught.value.problems
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "portal:latest" in t)
    assert problem.line == line
