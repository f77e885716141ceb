"""Every kind of bad tenant file gets exit 2 and `path:line:col: field: message`, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from automation.cli import app

VALID = b"""slug: acme
name: Acme GmbH
plan: pro
admins:
  - email: anna@acme.de
    name: Anna
"""

# (case, file name, content, line, col, field, words in the message)
CASES = [
    ("yaml syntax", "acme", b"slug: acme\nname: [unclosed\n", 3, 1, "file", "YAML syntax"),
    ("tab indentation", "acme", b"slug: acme\n\tname: x\n", 2, 1, "file", "tabs"),
    ("empty file", "acme", b"", 1, 1, "file", "empty"),
    ("only a comment", "acme", b"# nothing\n", 1, 1, "file", "empty"),
    ("not utf-8", "acme", b"slug: acme\nname: M\xfcller\n", 2, 8, "file", "UTF-8"),
    ("list at top", "acme", b"- slug: acme\n", 1, 1, "file", "mapping"),
    ("scalar at top", "acme", b"acme\n", 1, 1, "file", "mapping"),
    ("alias bomb", "acme", b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", 1, 4, "file", "anchors"),
    ("duplicate key", "acme", VALID + b"plan: mvp\n", 7, 1, "file", "duplicate key 'plan'"),
    (
        "unknown key typo",
        "acme",
        VALID + b"mail_domain: [acme.de]\n",
        7,
        1,
        "mail_domain",
        "did you mean 'mail_domains'",
    ),
    (
        "unknown nested key",
        "acme",
        VALID + b"quota:\n  file_gb: 5\n",
        8,
        3,
        "quota.file_gb",
        "unknown field",
    ),
    (
        "wrong type",
        "acme",
        VALID.replace(b"name: Acme GmbH", b"name: 123"),
        2,
        7,
        "name",
        "valid string",
    ),
    ("list where mapping belongs", "acme", VALID + b"quota: [5]\n", 7, 8, "quota", "dictionary"),
    (
        "mapping where list belongs",
        "acme",
        VALID + b"mail_domains: {a: b}\n",
        7,
        15,
        "mail_domains",
        "tuple",
    ),
    (
        "string number",
        "acme",
        VALID + b"quota:\n  files_gb: '10'\n",
        8,
        13,
        "quota.files_gb",
        "valid integer",
    ),
    (
        "zero quota",
        "acme",
        VALID + b"quota:\n  mail_gb: 0\n",
        8,
        12,
        "quota.mail_gb",
        "greater than 0",
    ),
    ("bad plan", "acme", VALID.replace(b"plan: pro", b"plan: gold"), 3, 7, "plan", "'mvp'"),
    ("missing name", "acme", VALID.replace(b"name: Acme GmbH\n", b""), 1, 1, "name", "missing"),
    (
        "reserved slug",
        "admin",
        VALID.replace(b"slug: acme", b"slug: admin"),
        1,
        7,
        "slug",
        "reserved",
    ),
    (
        "double hyphen",
        "ac--me",
        VALID.replace(b"slug: acme", b"slug: ac--me"),
        1,
        7,
        "slug",
        "'--'",
    ),
    (
        "uppercase slug",
        "Acme",
        VALID.replace(b"slug: acme", b"slug: Acme"),
        1,
        7,
        "slug",
        "pattern",
    ),
    (
        "slug too long",
        "a" * 33,
        VALID.replace(b"slug: acme", b"slug: " + b"a" * 33),
        1,
        7,
        "slug",
        "at most 32",
    ),
    ("slug not file name", "other", VALID, 1, 7, "slug", "does not match the file name"),
    (
        "bad email",
        "acme",
        VALID.replace(b"anna@acme.de", b"anna.acme.de"),
        5,
        12,
        "admins[0].email",
        "email",
    ),
    ("no admin when active", "acme", VALID.split(b"admins:")[0], 1, 1, "admins", "at least one"),
    (
        "bad mail domain",
        "acme",
        VALID + b"mail_domains: [acme]\n",
        7,
        16,
        "mail_domains[0]",
        "fully qualified",
    ),
    (
        "uppercase domain",
        "acme",
        VALID + b"portal_domain: Acme.de\n",
        7,
        16,
        "portal_domain",
        "lowercase",
    ),
    ("python tag", "acme", VALID + b"x: !!python/object:os.system ls\n", 7, 4, "file", "YAML"),
    ("deep nesting", "acme", b"a: " + b"[" * 40 + b"]" * 40 + b"\n", 1, 20, "file", "nested"),
]


@pytest.mark.parametrize(
    ("stem", "content", "line", "col", "field", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_file_is_reported_at_its_position(
    repo_copy: Path,
    cli: CliRunner,
    stem: str,
    content: bytes,
    line: int,
    col: int,
    field: str,
    words: str,
) -> None:
    path = repo_copy / "tenants" / f"{stem}.yaml"
    path.write_bytes(content)
    before = sorted(p.name for p in repo_copy.rglob("*"))

    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: {field}: "), first
    assert words in first, first
    assert sorted(p.name for p in repo_copy.rglob("*")) == before  # nothing written anywhere


def test_oversized_file_is_refused_before_parsing(repo_copy: Path, cli: CliRunner) -> None:
    path = repo_copy / "tenants" / "acme.yaml"
    path.write_bytes(VALID + b"# " + b"x" * (1024 * 1024) + b"\n")
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])
    assert result.exit_code == 2
    assert (
        result.output.startswith(f"{path}:1:1: file: file is 1,048,") and "1 MiB" in result.output
    )


def test_every_problem_in_every_file_is_reported_at_once(repo_copy: Path, cli: CliRunner) -> None:
    tenants = repo_copy / "tenants"
    (tenants / "acme.yaml").write_bytes(
        VALID.replace(b"plan: pro", b"plan: gold") + b"quota:\n  mail_gb: -1\nextra: 1\n"
    )
    (tenants / "beta.yaml").write_bytes(b"slug: beta\n\tname: x\n")
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])
    assert result.exit_code == 2
    assert [line.split(": ")[0] for line in result.output.splitlines()] == [
        f"{tenants}/acme.yaml:3:7",
        f"{tenants}/acme.yaml:8:12",
        f"{tenants}/acme.yaml:9:1",
        f"{tenants}/beta.yaml:2:1",
    ]


def _tenant(slug: str, extra: str = "") -> bytes:
    return VALID.replace(b"slug: acme", f"slug: {slug}".encode()) + extra.encode()


@pytest.mark.parametrize(
    ("first", "second", "line", "col", "field", "words"),
    [
        (
            "mail_domains: [shop.de]\n",
            "mail_domains: [beta.de, shop.de]\n",
            7,
            25,
            "mail_domains[1]",
            "mail domain 'shop.de' is already used by",
        ),
        (
            "portal_domain: acme.example.de\n",
            "portal_domain: acme.example.de\n",
            7,
            16,
            "portal_domain",
            "portal domain 'acme.example.de' is already used",
        ),
        (
            "",
            "portal_domain: acme.dezky.eu\n",
            7,
            16,
            "portal_domain",
            "portal domain 'acme.dezky.eu' is already used",
        ),
    ],
    ids=["mail domain twice", "portal domain twice", "portal domain equals a default"],
)
def test_set_wide_duplicates_point_at_the_second_file(
    repo_copy: Path,
    cli: CliRunner,
    first: str,
    second: str,
    line: int,
    col: int,
    field: str,
    words: str,
) -> None:
    (repo_copy / "tenants" / "acme.yaml").write_bytes(_tenant("acme", first))
    (repo_copy / "tenants" / "beta.yaml").write_bytes(_tenant("beta", second))
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])
    assert result.exit_code == 2
    expected = f"{repo_copy}/tenants/beta.yaml:{line}:{col}: {field}: {words}"
    assert result.output.startswith(expected), result.output


def test_duplicate_slug_across_folders(repo_copy: Path, cli: CliRunner) -> None:
    other = repo_copy / "elsewhere"
    other.mkdir()
    (repo_copy / "tenants" / "acme.yaml").write_bytes(_tenant("acme"))
    (other / "acme.yaml").write_bytes(_tenant("acme", "portal_domain: acme.example.de\n"))
    result = cli.invoke(
        app, ["validate", "--repo", str(repo_copy), str(repo_copy / "tenants"), str(other)]
    )
    assert result.exit_code == 2
    assert f"{other}/acme.yaml:1:7: slug: slug 'acme' is already used by" in result.output


def test_missing_path_is_reported(repo_copy: Path, cli: CliRunner) -> None:
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy), "nope.yaml"])
    assert result.exit_code == 2
    assert result.output.startswith("nope.yaml:1:1: file: no such file")


def test_valid_files_exit_zero(repo_copy: Path, cli: CliRunner) -> None:
    (repo_copy / "tenants" / "acme.yaml").write_bytes(_tenant("acme"))
    (repo_copy / "tenants" / "beta.yaml").write_bytes(_tenant("beta", "status: offboarding\n"))
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])
    assert result.exit_code == 0, result.output
    assert result.output == "2 tenant files valid\n"


def test_plan_with_a_bad_file_renders_nothing(repo_copy: Path, cli: CliRunner) -> None:
    (repo_copy / "tenants" / "acme.yaml").write_bytes(_tenant("acme"))
    (repo_copy / "tenants" / "beta.yaml").write_bytes(b"slug: beta\n")
    result = cli.invoke(app, ["plan", "--repo", str(repo_copy), "--format", "json"])
    assert result.exit_code == 2
    assert '"stacks"' not in result.output  # no stack was rendered, not even the valid one
    assert f"{repo_copy}/tenants/beta.yaml:1:1: name: required field is missing" in result.output


def test_purge_is_refused_unless_offboarding(repo_copy: Path, cli: CliRunner) -> None:
    path = repo_copy / "tenants" / "acme.yaml"
    path.write_bytes(VALID + b"purge_files_on_destroy: true\n")
    result = cli.invoke(app, ["validate", "--repo", str(repo_copy)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"{path}:7:25: purge_files_on_destroy: may only be true when status is offboarding"
    )
