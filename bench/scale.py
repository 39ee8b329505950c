"""Scale figures (issue #14 items 3-4): `python bench/scale.py [--rtt 0.04] [--sizes dev,ha,100,300]
[--parallelism 8]`.

For examples/dev.yaml, examples/ha.yaml and dev.yaml with 100 and 300 node groups (each of size 0..1: the
listings and the request rates are what is measured, not instances), on a private moto server:

- render: `kubeaws render` in a new process: wall and peak RSS;
- cold plan: `kubeaws plan` in a new process against the empty emulator (the second such run: the first
  fills the kubeaws cache, as after an install): wall and peak RSS;
- apply and delete through the latency model: tests/faulty_proxy.py in front of the emulator holds every
  request for `--rtt` seconds (a round trip) and keeps AWS's EC2 request-token buckets at their full figures
  (`AwsLikeLimits`: a request over them is answered RequestLimitExceeded, the "throttles seen"); kubeaws runs
  with its own client-side limiter (aws/ratelimit.py, AWS's figures x 0.8, as on AWS) and `--parallelism`
  workers. Printed: wall; critical path (the change graph's longest chain, each change weighing its measured
  time: the wall with unbounded parallelism); EC2 rate floor (the least time kubeaws' share of EC2's buckets
  allows for the EC2 requests sent: the wall cannot beat it either); serial sum (every AWS call's time, one
  after the other); calls; the client-side limiter's waits (requests, seconds summed over threads);
- re-plan: `kubeaws -v plan -o json` in a new process against the applied cluster (directly on the emulator):
  wall, peak RSS, AWS calls (the -v trace's lines) and pending changes (must be 0);
- leftovers after the delete (must be 0).

Times are this machine's, with its load (printed): see docs/performance.md for how to read them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
EXAMPLES = REPO / "examples"
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def spec_file(name: str, workdir: Path) -> Path:
    """examples/<name>.yaml, or dev.yaml with N minimal node groups for a number."""
    if not name.isdigit():
        return EXAMPLES / f"{name}.yaml"
    import yaml

    doc = yaml.safe_load((EXAMPLES / "dev.yaml").read_text())
    doc["metadata"]["name"] = f"scale{name}"
    doc["spec"]["nodeGroups"] = [{"name": f"g{i:03d}", "instanceTypes": ["m5.large"],
                                  "size": {"min": 0, "desired": 0, "max": 1}} for i in range(int(name))]
    path = workdir / f"scale{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


#: Starts the measured commands. A child's peak RSS (ru_maxrss) counts the memory of the process it was forked
#: from, so the commands are forked by this small launcher, started before the bench loads anything, not by the
#: bench itself (which holds kubeaws and a 300-group model). One JSON request per line: {"argv", "env"}.
LAUNCHER = """
import json, os, subprocess, sys, tempfile, time
for line in sys.stdin:
    req = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(req["argv"], stdout=out, stderr=err, env=req["env"])
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        out.seek(0); err.seek(0)
        print(json.dumps({"wall": wall, "mib": usage.ru_maxrss / 1024, "rc": os.waitstatus_to_exitcode(status),
                          "stdout": out.read().decode(), "stderr": err.read().decode()}), flush=True)
"""
_launcher: subprocess.Popen[str] | None = None


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float, str, str]:
    """Wall seconds, peak RSS (MiB), stdout and stderr of `kubeaws ARGS` in a new process."""
    assert _launcher is not None and _launcher.stdin is not None and _launcher.stdout is not None
    exe = Path(sys.executable).parent / "kubeaws"
    _launcher.stdin.write(json.dumps({"argv": [str(exe), *args], "env": env}) + "\n")
    _launcher.stdin.flush()
    done = json.loads(_launcher.stdout.readline())
    if done["rc"] != 0:
        raise RuntimeError(f"kubeaws {' '.join(args)} failed: {done['stderr'][-2000:]}")
    return done["wall"], done["mib"], done["stdout"], done["stderr"]


def rate_floor(actions: list[str], share: float) -> float:
    """The shortest time EC2's request buckets (kubeaws' share of them) allow for these requests: per action,
    what exceeds the bucket's burst at its refill rate; the slowest action."""
    from collections import Counter

    from kubeaws.aws.ratelimit import ec2_draws

    floor = 0.0
    for action, n in Counter(actions).items():
        for _, rate, tokens in ec2_draws(action, {"MaxResults": "1"}):
            floor = max(floor, (n * tokens - rate.capacity * share) / (rate.refill * share))
    return floor


class Spans:
    """Every AWS call's start and end (monotonic), per thread."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.open: dict[int, tuple[str, float]] = {}
        self.lock = threading.Lock()

    def before(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.open[threading.get_ident()] = (model.name, time.monotonic())

    def after(self, **_: Any) -> None:
        with self.lock:
            name, t0 = self.open.pop(threading.get_ident(), ("?", time.monotonic()))
            self.spans.append((name, t0, time.monotonic()))

    def take(self) -> tuple[int, float, list[str]]:
        """Calls, their serial sum, and the EC2 actions among them (the `ec2` ones: see `ec2_calls`)."""
        with self.lock:
            out = (len(self.spans), sum(e - s for _, s, e in self.spans), [n for n, _, _ in self.spans])
            self.spans.clear()
            return out


def measure(name: str, workdir: Path, url: str, rtt: float, parallelism: int) -> dict[str, Any]:
    from tests.conftest import reset_moto
    from tests.faulty_proxy import AwsLikeLimits, FaultyProxy

    from kubeaws import api
    from kubeaws.aws.ratelimit import RateLimiter
    from kubeaws.aws.retry import RetryPolicy
    from kubeaws.aws.session import AwsContext, AwsSettings
    from kubeaws.engine import delete_order
    from kubeaws.engine.types import Change, Event
    from kubeaws.model import build
    from kubeaws.resources import controller_made, registry
    from kubeaws.resources.base import Kind
    from kubeaws.resources.controller_made import ControllerKind

    reset_moto(url)
    path = spec_file(name, workdir)
    env = {**os.environ, **FAKE_AWS, "AWS_ENDPOINT_URL": url}
    row: dict[str, Any] = {"spec": name}
    with tempfile.TemporaryDirectory() as out:
        row["render_s"], row["render_mib"], _, _ = run_cli(["render", "-f", str(path), "-d", out], env)
    run_cli(["plan", "-f", str(path), "--force"], env)  # the kubeaws cache (parsed models, templates) filled once
    row["plan_s"], row["plan_mib"], _, _ = run_cli(["plan", "-f", str(path), "--force"], env)

    spec = api.load_spec(path)
    row["groups"] = len(spec.spec.node_groups)
    proxy = FaultyProxy(url, latency=rtt, limits=AwsLikeLimits()).start()
    try:
        limiter = RateLimiter()
        ctx = AwsContext(AwsSettings(region=spec.spec.region, endpoint_url=proxy.url), cluster=spec.metadata.name,
                         policy=RetryPolicy(poll_interval=0.1), limiter=limiter)
        spans = Spans()
        ec2_ops = set(ctx.client("ec2").meta.service_model.operation_names)
        for event, handler in (("before-call", spans.before), ("after-call", spans.after),
                               ("after-call-error", spans.after)):
            ctx.add_hook(event, handler)
        seconds: dict[str, float] = {}

        def sink(event: Event) -> None:
            if event.state == "done":
                seconds[f"{event.kind}/{event.name}"] = event.seconds
                seconds[f"{event.kind}/{event.id}"] = event.seconds

        state = api.plan_state(spec, ctx)
        spans.take()
        applied = api.apply(spec, ctx, plan=state, on_event=sink, max_workers=parallelism)
        assert applied.ok, [(e.key, e.error) for e in applied.failed + applied.skipped][:5]
        row["apply_s"] = applied.seconds
        row["apply_calls"], row["apply_serial"], names = spans.take()
        row["apply_floor"] = rate_floor([n for n in names if n in ec2_ops], limiter.share)
        changes = {c.key for c in state.plan.changes if c.action != "delete"}
        deps = {k: {d for d in state.graph[k].refs() if d in changes} for k in changes}
        row["apply_critical"] = delete_order.critical_path(deps, lambda k: seconds.get(k, 0.0))[0]
        row["apply_throttled"] = proxy.stats.faults["rate-limited"]
        row["apply_waits"] = (limiter.stats.delayed, limiter.stats.waited)

        wall, mib, stdout, stderr = run_cli(["-v", "plan", "-f", str(path), "-o", "json", "--force"], env)
        row["replan_s"], row["replan_mib"] = wall, mib
        row["replan_calls"] = sum(1 for line in stderr.splitlines() if line.startswith("aws "))
        pending = [c for c in json.loads(stdout)["changes"] if c["action"] != "noop"]
        row["replan_pending"] = len(pending)
        row["replan_changes"] = [(c["action"], c["kind"], c["name"], c["diff"], c["reasons"]) for c in pending]

        report = api.status(spec, ctx, every_kind=True)
        spans.take()
        seconds.clear()
        before = proxy.stats.faults["rate-limited"]
        waits = (limiter.stats.delayed, limiter.stats.waited)
        deleted = api.delete(spec, ctx, on_event=sink, max_workers=parallelism, observation=report.observation)
        assert deleted.ok, [(e.key, e.error) for e in deleted.failed + deleted.skipped][:5]
        row["delete_s"] = deleted.seconds
        row["delete_calls"], row["delete_serial"], names = spans.take()
        row["delete_floor"] = rate_floor([n for n in names if n in ec2_ops], limiter.share)
        kinds: dict[str, Kind | ControllerKind] = {**registry.kinds(), **controller_made.kinds()}
        obs = report.observation
        assert obs is not None
        deletes = [Change("delete", o.kind, o.id, o.id, {}, None, o) for o in obs.all_owned()]
        ddeps = delete_order.waits_for(deletes, lambda kind: kinds[kind].rank, build(spec))
        row["delete_critical"] = delete_order.critical_path(ddeps, lambda k: seconds.get(k, 0.0))[0]
        row["delete_throttled"] = proxy.stats.faults["rate-limited"] - before
        row["delete_waits"] = (limiter.stats.delayed - waits[0], limiter.stats.waited - waits[1])
        row["leftovers"] = sum(len(kind.list_owned(ctx)) for kind in registry.kinds().values())
    finally:
        proxy.stop()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=0.04, help="seconds the proxy holds every AWS request")
    parser.add_argument("--sizes", default="dev,ha,100,300", help="specs: example names or node-group counts")
    parser.add_argument("--parallelism", type=int, default=8, help="the engine's workers (kubeaws --parallelism)")
    args = parser.parse_args()
    os.environ.update(FAKE_AWS)
    global _launcher
    _launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    from kubeaws.local import emulator

    proc, url = emulator.launch()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as work:
            for name in args.sizes.split(","):
                load = os.getloadavg()[0]
                row = measure(name, Path(work), url, args.rtt, args.parallelism)
                row["load"] = load
                rows.append(row)
                print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{os.cpu_count()} CPUs; round trip {args.rtt * 1000:.0f} ms; --parallelism {args.parallelism}; "
          "EC2's request buckets kept by the proxy at AWS's figures, by kubeaws at 0.8 of them")
    print("| spec | groups | load | render s / MiB | cold plan s / MiB | apply wall / critical path / EC2 rate floor / "
          "serial sum (calls) | delete wall / critical path / EC2 rate floor / serial sum (calls) | re-plan s / MiB / "
          "calls / pending | throttles seen (apply, delete) | client waits for a token (apply, delete) | "
          "left after delete |")
    print("|---|---:|---:|---|---|---|---|---|---|---|---:|")
    for r in rows:
        print(f"| {r['spec']} | {r['groups']} | {r['load']:.1f} | {r['render_s']:.2f} / {r['render_mib']:.0f} | "
              f"{r['plan_s']:.2f} / {r['plan_mib']:.0f} | {r['apply_s']:.2f} / {r['apply_critical']:.2f} / "
              f"{r['apply_floor']:.1f} / {r['apply_serial']:.1f} s ({r['apply_calls']}) | {r['delete_s']:.2f} / "
              f"{r['delete_critical']:.2f} / {r['delete_floor']:.1f} / {r['delete_serial']:.1f} s "
              f"({r['delete_calls']}) | {r['replan_s']:.2f} / {r['replan_mib']:.0f} / "
              f"{r['replan_calls']} / {r['replan_pending']} | {r['apply_throttled']}, {r['delete_throttled']} | "
              f"{r['apply_waits'][0]} ({r['apply_waits'][1]:.1f} s), {r['delete_waits'][0]} "
              f"({r['delete_waits'][1]:.1f} s) | {r['leftovers']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
