"""Load tenant files into validated ``Tenant`` models, reporting every problem at once.

``load_tenants`` is the edge: after it, code takes ``Tenant`` and trusts it. Per-file checks
come from the model; set-wide checks (file name, duplicate slugs and domains) from here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydantic
from pydantic_core import ErrorDetails

from tenants.model import Tenant
from tenants.problems import Problem, SpecError
from tenants.yamldoc import Loc, YamlDoc, parse, read_text

TENANT_SUFFIX = ".yaml"


@dataclass(frozen=True)
class TenantFile:
    """A validated tenant and where its fields are written (for set-wide problems)."""

    tenant: Tenant
    doc: YamlDoc


def tenant_paths(directory: Path) -> list[Path]:
    """Every tenant file in ``directory``, in a stable order."""
    return sorted(p for p in directory.glob(f"*{TENANT_SUFFIX}") if p.is_file())


def parse_tenant(text: str, shown: str) -> TenantFile:
    """Validate one tenant file's text; ``shown`` is the path used in messages."""
    doc = parse(text, shown)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"'{doc.data}'"
        raise SpecError(
            [
                Problem(
                    shown,
                    1,
                    1,
                    "file",
                    f"expected a mapping of fields (slug, name, plan), got {kind}",
                )
            ]
        )
    try:
        return TenantFile(Tenant.model_validate(doc.data), doc)
    except pydantic.ValidationError as exc:
        raise SpecError([_to_problem(doc, err) for err in exc.errors()]) from None


def load_tenant(path: Path, shown: str | None = None) -> TenantFile:
    """Read and validate one tenant file, including that its slug matches the file name."""
    shown = shown or str(path)
    loaded = parse_tenant(read_text(path, shown), shown)
    problems = _name_problems(loaded, path)
    if problems:
        raise SpecError(problems)
    return loaded


def load_tenants(paths: Iterable[Path], base_domain: str) -> list[TenantFile]:
    """Load every file and check the set; raise one SpecError listing all problems."""
    loaded: list[TenantFile] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded.append(load_tenant(path))
        except SpecError as exc:
            problems.extend(exc.problems)
    problems.extend(fleet_problems(loaded, base_domain))
    if problems:
        raise SpecError(problems)
    return loaded


def fleet_problems(files: Sequence[TenantFile], base_domain: str) -> list[Problem]:
    """Problems that only show across files: duplicate slugs, mail and portal domains."""
    problems: list[Problem] = []
    owners: dict[tuple[str, str], TenantFile] = {}

    def claim(kind: str, value: str, file: TenantFile, loc: Loc) -> None:
        first = owners.setdefault((kind, value), file)
        if first is not file:
            line, col = file.doc.position(loc)
            message = f"{kind} '{value}' is already used by {first.doc.path}"
            problems.append(Problem(file.doc.path, line, col, _field(loc), message))

    for file in files:
        tenant = file.tenant
        claim("slug", tenant.slug, file, ("slug",))
        loc: Loc = ("portal_domain",) if tenant.portal_domain else ("slug",)
        claim("portal domain", tenant.resolved_portal_domain(base_domain), file, loc)
        for i, domain in enumerate(tenant.mail_domains):
            claim("mail domain", domain, file, ("mail_domains", i))
    return problems


def _name_problems(loaded: TenantFile, path: Path) -> list[Problem]:
    expected = path.name.removesuffix(TENANT_SUFFIX)
    if not path.name.endswith(TENANT_SUFFIX):
        return [Problem(loaded.doc.path, 1, 1, "file", "tenant files end in '.yaml'")]
    if loaded.tenant.slug == expected:
        return []
    line, col = loaded.doc.position(("slug",))
    message = f"slug '{loaded.tenant.slug}' does not match the file name (expected '{expected}')"
    return [Problem(loaded.doc.path, line, col, "slug", message)]


def _field(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "file"


def _to_problem(doc: YamlDoc, err: ErrorDetails) -> Problem:
    loc = _yaml_loc(err["loc"])
    kind = err["type"]
    line, col = doc.position(loc, of_key=kind == "extra_forbidden")
    if kind == "extra_forbidden":
        message = _unknown_key_message(loc)
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = err["msg"].removeprefix("Value error, ")
    return Problem(doc.path, line, col, _field(loc), message)


def _yaml_loc(loc: tuple[int | str, ...]) -> Loc:
    # pydantic adds the name of a failing constraint as a loc part for some annotated types
    # (e.g. 'function-after[...]'); those are not keys in the file.
    return tuple(p for p in loc if isinstance(p, int) or not p.startswith(("function-", "lax-")))


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1])
    hint = difflib.get_close_matches(key, allowed, n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
    return f"unknown field '{key}'{suggestion}"


def _allowed_keys(parent: Loc) -> list[str]:
    model: type[pydantic.BaseModel] = Tenant
    for part in parent:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        nested = _model_in(annotation)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def _model_in(annotation: object) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
