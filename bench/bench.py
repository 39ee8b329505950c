"""kubeaws benchmark against a private moto server (a script, not a test): `python bench/bench.py`.

For each spec (default examples/dev.yaml and examples/ha.yaml):
- cold `kubeaws plan`: a new `python -m kubeaws.cli.main plan -f SPEC --output json` process per run
  (interpreter and CLI start included), on an empty emulator: the first with an empty kubeaws cache (once
  after an install or upgrade), then best and median of N runs;
- apply wall time on the emulator through the Python API, with the AWS calls it made (total, mutating, reads);
- a re-plan after apply: its calls per operation;
then checks the targets (cold plan median < 1 s; re-plan 0 mutating calls and at most one describe per
resource kind, SSM AMI lookups aside), prints PASS/FAIL per check, deletes the cluster, and exits 1 if any
check failed. Apply times are moto's, not AWS's: they measure kubeaws's own overhead and parallelism.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
COLD_PLAN_TARGET = 1.0
LOOKUP_SERVICES = {"ssm"}  # AMI lookups from public SSM parameters: not a resource kind's describe

console = Console()


@contextmanager
def moto_server() -> Iterator[str]:
    """A private moto server (the launcher `kubeaws --local` uses), stopped on exit."""
    from kubeaws.errors import EmulatorError
    from kubeaws.local.emulator import launch

    try:
        proc, url = launch()
    except EmulatorError as exc:
        raise SystemExit(str(exc)) from None
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=30)


@dataclass
class SpecResult:
    spec: str
    cold: list[float] = field(default_factory=list)
    #: the very first plan with an empty kubeaws cache (once after an install or a botocore upgrade)
    first: float = 0.0
    apply_seconds: float = 0.0
    apply_ok: bool = False
    apply_resources: int = 0
    apply_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    replan_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    replan_pending: int = -1
    kinds: int = 0
    #: kind -> (read calls of one list_owned after apply, reads the kind declares it needs)
    kind_reads: dict[str, tuple[int, int]] = field(default_factory=dict)
    delete_seconds: float = 0.0
    checks: list[tuple[str, bool, str]] = field(default_factory=list)


def is_read(op: str) -> bool:
    from kubeaws.aws.session import is_read_operation

    return is_read_operation(op)


def compile_bytecode() -> None:
    """Write kubeaws' bytecode first, as a regular `pip install` does: a cold run then measures what a user
    sees, even where PYTHONDONTWRITEBYTECODE keeps the interpreter from caching it (an editable install
    under that setting would otherwise recompile all ~100 modules, ~0.1 s, on every run)."""
    import compileall

    import kubeaws

    compileall.compile_dir(str(Path(kubeaws.__file__).parent), quiet=1)


def cold_plan(spec: Path, url: str, runs: int) -> tuple[float, list[float]]:
    """(the first plan with an empty kubeaws cache, then `runs` plans with it warm): each a new process."""
    compile_bytecode()
    cache = tempfile.mkdtemp(prefix="kubeaws-bench-cache-")
    env = {**os.environ, **FAKE_AWS, "AWS_ENDPOINT_URL": url, "KUBEAWS_CACHE_DIR": cache}
    env.pop("AWS_PROFILE", None)
    times: list[float] = []
    try:
        for _ in range(runs + 1):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "kubeaws.cli.main", "plan", "-f", str(spec), "--output",
                                   "json"], env=env, cwd=REPO, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"kubeaws plan -f {spec} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
            json.loads(proc.stdout)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return times[0], times[1:]


def bench_spec(spec_path: Path, url: str, runs: int) -> SpecResult:
    from kubeaws import api
    from kubeaws.resources import registry

    res = SpecResult(spec=str(spec_path.relative_to(REPO) if spec_path.is_relative_to(REPO) else spec_path))
    reset(url)
    spec = api.load_spec(spec_path)
    ctx = api.connect(spec, endpoint_url=url)
    api.plan(spec, ctx)  # warm the emulator (moto builds its EC2 catalogues on first use); not measured
    res.first, res.cold = cold_plan(spec_path, url, runs)

    with ctx.counting() as log:
        start = time.perf_counter()
        result = api.apply(spec, ctx)
        res.apply_seconds = time.perf_counter() - start
    res.apply_ok = result.ok
    res.apply_resources = len(result.done)
    res.apply_calls = log.snapshot()
    if not result.ok:
        for e in result.failed + result.skipped:
            console.print(f"[red]{e.key}[/red] {e.state}: {e.error}")

    with ctx.counting() as log:
        plan = api.plan(spec, ctx)
    res.replan_calls = log.snapshot()
    res.replan_pending = plan.pending
    res.kinds = len(registry.kinds())
    for name, kind in registry.kinds().items():
        with ctx.counting() as kind_log:
            kind.list_owned(ctx)
        res.kind_reads[name] = (sum(n for (_, op), n in kind_log.snapshot().items() if is_read(op)), kind.list_reads)

    start = time.perf_counter()
    deleted = api.delete(spec, ctx)
    res.delete_seconds = time.perf_counter() - start
    res.checks = checks(res)
    res.checks.append(("delete ok", deleted.ok, f"{len(deleted.done)} deleted in {res.delete_seconds:.2f}s"))
    return res


def checks(res: SpecResult) -> list[tuple[str, bool, str]]:
    median = statistics.median(res.cold)
    mutating = sum(n for (_, op), n in res.replan_calls.items() if not is_read(op))
    describes = sum(n for (svc, op), n in res.replan_calls.items() if is_read(op) and svc not in LOOKUP_SERVICES)
    worst = max((n for (svc, op), n in res.replan_calls.items() if is_read(op) and svc not in LOOKUP_SERVICES),
                default=0)
    return [
        (f"cold plan median < {COLD_PLAN_TARGET:.0f} s", median < COLD_PLAN_TARGET, f"{median:.3f}s"),
        ("apply ok", res.apply_ok, f"{res.apply_resources} resources in {res.apply_seconds:.2f}s"),
        ("re-plan empty", res.replan_pending == 0, f"{res.replan_pending} pending"),
        ("re-plan 0 mutating calls", mutating == 0, str(mutating)),
        ("re-plan <= 1 describe per kind", describes <= res.kinds,
         f"{describes} describes for {res.kinds} kinds (most repeated operation: {worst}x)"),
        ("each kind: 1 read (ELBv2: declared 2-3)", all(n <= declared for n, declared in res.kind_reads.values()),
         ", ".join(f"{k} {n}" for k, (n, _) in sorted(res.kind_reads.items()) if n > 1) or "all 1"),
    ]


def render(results: list[SpecResult]) -> bool:
    summary = Table(title="kubeaws on the moto emulator", title_justify="left")
    summary.caption = ("plan: cold `kubeaws plan` process (first: with an empty kubeaws cache; then best/median); "
                       "apply: wall time, resources, AWS calls "
                       "(total/mutating/reads); re-plan: AWS calls after apply (total/mutating/describes per kind)")
    summary.add_column("spec", no_wrap=True)
    for col in ("plan first", "plan best", "plan median", "apply", "resources", "calls", "mutating", "reads",
                "re-plan calls", "re-plan mutating", "desc/kind"):
        summary.add_column(col, justify="right")
    for r in results:
        apply_total = sum(r.apply_calls.values())
        apply_mut = sum(n for (_, op), n in r.apply_calls.items() if not is_read(op))
        replan_total = sum(r.replan_calls.values())
        replan_mut = sum(n for (_, op), n in r.replan_calls.items() if not is_read(op))
        replan_desc = sum(n for (s, op), n in r.replan_calls.items() if is_read(op) and s not in LOOKUP_SERVICES)
        summary.add_row(r.spec, f"{r.first:.3f}s", f"{min(r.cold):.3f}s", f"{statistics.median(r.cold):.3f}s",
                        f"{r.apply_seconds:.2f}s", str(r.apply_resources), str(apply_total), str(apply_mut),
                        str(apply_total - apply_mut), str(replan_total), str(replan_mut),
                        f"{replan_desc / max(r.kinds, 1):.2f}")
    console.print(summary)

    for r in results:
        ops = Table(title=f"{r.spec}: AWS calls per operation", title_justify="left")
        for col in ("service", "operation", "apply", "re-plan"):
            ops.add_column(col, justify="right" if col in ("apply", "re-plan") else "left")
        for svc, op in sorted(set(r.apply_calls) | set(r.replan_calls)):
            ops.add_row(svc, op, str(r.apply_calls.get((svc, op), 0)), str(r.replan_calls.get((svc, op), 0)))
        console.print(ops)

    ok = True
    verdicts = Table(title="targets", title_justify="left")
    for col in ("spec", "check", "result", "measured"):
        verdicts.add_column(col)
    for r in results:
        for name, passed, measured in r.checks:
            ok = ok and passed
            verdicts.add_row(r.spec, name, "[green]PASS[/green]" if passed else "[bold red]FAIL[/bold red]", measured)
    console.print(verdicts)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("specs", nargs="*", type=Path,
                        default=[REPO / "examples" / "dev.yaml", REPO / "examples" / "ha.yaml"])
    parser.add_argument("--runs", type=int, default=5, help="cold plan runs per spec (default 5)")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    os.environ.update(FAKE_AWS)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KUBEAWS_LOCAL"):
        os.environ.pop(var, None)
    missing = [str(s) for s in args.specs if not Path(s).is_file()]
    if missing:
        parser.error(f"no such spec file: {', '.join(missing)}")
    from kubeaws.errors import KubeawsError

    with moto_server() as url:
        try:
            results = [bench_spec(Path(s).resolve(), url, args.runs) for s in args.specs]
        except KubeawsError as exc:
            raise SystemExit(f"bench: {exc}") from None
    ok = render(results)
    if args.json:
        print(json.dumps([{"spec": r.spec, "firstPlan": r.first, "coldPlan": r.cold, "applySeconds": r.apply_seconds,
                           "applyCalls": {f"{s}:{o}": n for (s, o), n in r.apply_calls.items()},
                           "replanCalls": {f"{s}:{o}": n for (s, o), n in r.replan_calls.items()},
                           "checks": [{"check": c, "pass": p, "measured": m} for c, p, m in r.checks]}
                          for r in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
