"""Benchmark the CLI on generated fleets of N tenants: validate, full plan, plan --base.

Run it with ``make bench`` (which runs ``.venv/bin/python bench/plan.py``), or directly:

    .venv/bin/python bench/plan.py [--sizes 10,100,1000] [--runs 3] [--out FILE]

For each N it builds a throw-away git repository holding only ``environments/``,
``Pulumi.yaml`` and N generated tenant files (the code comes from the installed package, so a
plan --base never sees a code change), commits it, and times the ``dezky-infra`` next to this
interpreter, run with ``--repo <tmp>`` in ``<tmp>``:

- ``validate`` of every tenant file, and for comparison ``load_tenants`` in this process
  (the CLI figure includes interpreter and import start-up);
- ``plan --format json --workers 2`` of every stack;
- ``plan --base HEAD --format json --workers 2`` after changing one tenant's plan in the
  work tree (JSON only so that the result can be checked: one stack, with changes).

Wall times are medians over ``--runs``. ``rss_kib`` is ``ru_maxrss`` from ``os.wait4``: the
peak RSS of the largest single process in the command's tree (the CLI process, or a plan
worker it reaped), never the sum over workers. A failing command's argv, exit code and
stderr go under ``error`` for its N. One JSON document goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenants.environment import load_environment
from tenants.loader import load_tenants, tenant_paths

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("dezky-infra"))
PLANS = ("mvp", "pro", "enterprise")
WORKERS = ["--workers", "2"]
TENANT = """\
slug: {slug}
name: Tenant {i} GmbH
plan: {plan}
mail_domains:
  - {slug}-mail.de
admins:
  - email: admin@{slug}-mail.de
    name: Admin {i}
"""
QUOTA = "quota:\n  files_gb: {files}\n  mail_gb: {mail}\n"


class CommandFailed(Exception):
    pass


def tenant_file(i: int, plan: str | None = None) -> str:
    slug = f"t{i:04d}"
    text = TENANT.format(slug=slug, i=i, plan=plan or PLANS[i % len(PLANS)])
    return text + (QUOTA.format(files=100 + i, mail=20 + i % 50) if i % 4 == 0 else "")


def make_repo(root: Path, n: int) -> None:
    shutil.copytree(ROOT / "environments", root / "environments")
    # A fleet of N tenants needs a platform sized for it, or admission refuses the plan.
    prod = root / "environments" / "prod.yaml"
    text = re.sub(r"files_gb: \d+", f"files_gb: {2000 * n}", prod.read_text(encoding="utf-8"))
    prod.write_text(re.sub(r"mail_gb: \d+", f"mail_gb: {500 * n}", text), encoding="utf-8")
    shutil.copy2(ROOT / "Pulumi.yaml", root)
    (root / "tenants").mkdir()
    for i in range(n):
        (root / "tenants" / f"t{i:04d}.yaml").write_text(tenant_file(i), encoding="utf-8")
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "--no-gpg-sign", "-m", "bench"]):
        subprocess.run([*git, *args], check=True, capture_output=True)


def run_once(args: list[str], root: Path) -> tuple[float, int, str]:
    """Wall seconds, ru_maxrss (KiB) and stdout of one CLI run; CommandFailed on exit != 0."""
    argv = [CLI, *args, "--repo", str(root)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=root, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            stderr = err.read().decode(errors="replace")
            raise CommandFailed({"command": argv, "exit_code": proc.returncode, "stderr": stderr})
        return wall, usage.ru_maxrss, out.read().decode()


def measure(args: list[str], root: Path, runs: int, check: Callable[[str], bool]) -> dict[str, Any]:
    walls, rss = [], 0
    for _ in range(runs):
        wall, maxrss, out = run_once(args, root)
        if not check(out):
            raise CommandFailed({"command": args, "unexpected_output": out[:2000]})
        walls.append(wall)
        rss = max(rss, maxrss)
    return {"wall_s": round(statistics.median(walls), 4), "runs_s": _rounded(walls), "rss_kib": rss}


def in_process_validate(root: Path, runs: int) -> dict[str, Any]:
    base_domain = load_environment(root / "environments" / "prod.yaml").base_domain
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        load_tenants(tenant_paths(root / "tenants"), base_domain)
        walls.append(time.perf_counter() - start)
    return {"wall_s": round(statistics.median(walls), 4), "runs_s": _rounded(walls)}


def bench_size(n: int, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory(prefix=f"dezky-bench-{n}-") as tmp:
        root = Path(tmp)
        make_repo(root, n)
        try:
            result["validate"] = measure(
                ["validate"], root, runs, lambda out: out.strip() == f"{n} tenant files valid"
            )
            result["validate_in_process"] = in_process_validate(root, runs)
            result["plan"] = measure(
                ["plan", "--format", "json", *WORKERS],
                root,
                runs,
                lambda out: len(json.loads(out)["stacks"]) == n + 1,
            )
            i = n // 2
            changed = root / "tenants" / f"t{i:04d}.yaml"
            changed.write_text(tenant_file(i, PLANS[(i + 1) % len(PLANS)]), encoding="utf-8")
            result["plan_base"] = measure(
                ["plan", "--base", "HEAD", "--format", "json", *WORKERS],
                root,
                runs,
                lambda out: _changed_stacks(out) == [f"tenant-t{i:04d}"],
            )
        except CommandFailed as exc:
            result["error"] = exc.args[0]
    for key in ("validate", "validate_in_process"):
        if key in result:
            result[key]["files_per_s"] = round(n / result[key]["wall_s"])
    return result


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_n = {r["n"]: r for r in results}
    small, big = by_n[min(by_n)], by_n[max(by_n)]

    def get(r: dict[str, Any], key: str, field: str = "wall_s") -> Any:
        return r.get(key, {}).get(field)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    # What the CLI adds to the in-process work: interpreter start-up and imports.
    cli, in_process = get(big, "validate"), get(big, "validate_in_process")
    startup = round(cli - in_process, 3) if cli is not None and in_process is not None else None
    base_ratio = ratio(get(big, "plan_base"), get(small, "plan_base"))
    plan_1000 = get(by_n.get(1000, {}), "plan")
    validate_rate = get(big, "validate", "files_per_s")
    in_process_rate = get(big, "validate_in_process", "files_per_s")
    return {
        "validate_files_per_s": validate_rate,
        "validate_in_process_files_per_s": in_process_rate,
        "validate_startup_s": startup,
        "plan_base_ratio": {"of": f"N={big['n']} / N={small['n']}", "value": base_ratio},
        "plan_s_at_1000": plan_1000,
        "targets_met": {
            "validate >= 2000 files/s (CLI, largest N)": _met(validate_rate, 2000, ge=True),
            "validate >= 2000 files/s (in-process, largest N)": _met(
                in_process_rate, 2000, ge=True
            ),
            "plan --base ratio <= 1.3": _met(base_ratio, 1.3, ge=False),
            "full plan of 1000 < 30 s": None if plan_1000 is None else plan_1000 < 30,
        },
    }


def _met(value: float | None, target: float, ge: bool) -> bool | None:
    return None if value is None else (value >= target if ge else value <= target)


def _changed_stacks(out: str) -> list[str]:
    return [s["stack"] for s in json.loads(out)["stacks"] if any(s["changes"].values())]


def _rounded(walls: list[float]) -> list[float]:
    return [round(w, 4) for w in walls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated tenant counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s})
    results = []
    for n in sizes:
        print(f"bench: N={n} ...", file=sys.stderr, flush=True)
        results.append(bench_size(n, args.runs))
    document = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "rss_note": "ru_maxrss via os.wait4: largest single process in the tree (CLI or a "
        "reaped plan worker), KiB; not summed over workers",
        "sizes": results,
        "summary": summary(results),
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
