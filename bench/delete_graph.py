"""Render and delete figures (issue #14): `python bench/delete_graph.py [--runs 5] [--rtt 0.04]`.

- render: `kubeaws render -f examples/ha.yaml -o DIR` cold, a new process per run (with bytecode, as installed):
  wall, CPU (user+sys) and peak RSS (os.wait4), and whether botocore/boto3 were imported (a second run of the
  CLI in-process, reading sys.modules);
- delete: examples/ha.yaml applied on a private moto server, read once (`api.status(every_kind=True)`, as the
  CLI's preview), then deleted through a latency model: a botocore `before-send` hook that sleeps `--rtt`
  seconds before every request (a round trip to AWS; moto answers in ~ms). Printed: the delete's wall time;
  the serial sum of its calls (what one call after the other would take); the critical path of the delete
  graph (engine.delete_order) weighted with each deletion's measured time, i.e. the wall with unbounded
  parallelism; the rank-by-rank wall the previous executor had with the same deletion times (the sum over
  ranks of the slowest deletion of the rank); botocore clients built during the delete; and a cProfile
  summary of the delete (the top functions by own time, and the time spent building clients).

Times are this machine's, with its load: see docs/performance.md for how to read them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "ha.yaml"
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
SDK_CHECK = """
import sys
from kubeaws.cli.main import main
sys.argv = ["kubeaws", "render", "-f", sys.argv[1], "-d", sys.argv[2]]
try:
    main()
except SystemExit:
    pass
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3"))[:3]) or "none")
"""


def render(runs: int) -> dict[str, Any]:
    walls: list[float] = []
    cpus: list[float] = []
    rss: list[float] = []
    exe = Path(sys.executable).parent / "kubeaws"
    # Bytecode as an installed kubeaws has it (pip compiles on install): written once to a private prefix by a
    # first run that is not counted, even where PYTHONDONTWRITEBYTECODE is set.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="kubeaws-bench-pyc-")
    for n in range(runs + 1):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.monotonic()
            proc = subprocess.Popen([str(exe), "render", "-f", str(SPEC), "-d", out], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            if not n:
                continue
            walls.append(time.monotonic() - t0)
            assert status == 0, f"render failed ({status})"
            cpus.append(usage.ru_utime + usage.ru_stime)
            rss.append(usage.ru_maxrss / 1024)  # KiB -> MiB (Linux)
    with tempfile.TemporaryDirectory() as out:
        sdk = subprocess.run([sys.executable, "-c", SDK_CHECK, str(SPEC), out], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
    return {"wall_median": statistics.median(walls), "wall_best": min(walls), "cpu_median": statistics.median(cpus),
            "rss_max": max(rss), "sdk": sdk}


class Calls:
    """Every AWS call's start and end (monotonic), by thread; and a fixed round trip before each send."""

    def __init__(self, rtt: float) -> None:
        self.rtt = rtt
        self.spans: list[tuple[str, float, float]] = []
        self.open: dict[int, tuple[str, float]] = {}
        self.lock = threading.Lock()

    def before_call(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.open[threading.get_ident()] = (model.name, time.monotonic())

    def before_send(self, **_: Any) -> None:
        time.sleep(self.rtt)

    def after_call(self, **_: Any) -> None:
        with self.lock:
            name, t0 = self.open.pop(threading.get_ident(), ("?", time.monotonic()))
            self.spans.append((name, t0, time.monotonic()))


def delete(rtt: float, profile: bool) -> dict[str, Any]:
    os.environ.update(FAKE_AWS)
    from kubeaws import api
    from kubeaws.aws.retry import RetryPolicy
    from kubeaws.aws.session import AwsContext, AwsSettings
    from kubeaws.engine import delete_order
    from kubeaws.engine.types import Change, Event
    from kubeaws.local import emulator
    from kubeaws.resources import controller_made, registry
    from kubeaws.resources.base import Kind
    from kubeaws.resources.controller_made import ControllerKind

    proc, url = emulator.launch()
    try:
        spec = api.load_spec(SPEC)
        policy = RetryPolicy(base_delay=0.05, max_delay=0.2, poll_interval=0.1)
        ctx = AwsContext(AwsSettings(region=spec.spec.region, endpoint_url=url), cluster=spec.metadata.name,
                         policy=policy)
        applied = api.apply(spec, ctx)
        assert applied.ok, [(e.key, e.error) for e in applied.failed]
        ctx = AwsContext(AwsSettings(region=spec.spec.region, endpoint_url=url), cluster=spec.metadata.name,
                         policy=policy)  # a fresh context: a command's clients, none built yet
        calls = Calls(rtt)
        ctx.add_hook("before-call", calls.before_call)
        ctx.add_hook("before-send", calls.before_send)
        ctx.add_hook("after-call", calls.after_call)
        ctx.add_hook("after-call-error", calls.after_call)
        built: list[str] = []
        new_client = ctx._new_client

        def counting(service: str) -> Any:
            built.append(service)
            return new_client(service)

        ctx._new_client = counting  # type: ignore[method-assign]
        t0 = time.monotonic()
        report = api.status(spec, ctx, every_kind=True)
        read_s = time.monotonic() - t0
        reads, clients_read = len(calls.spans), len(built)
        seconds: dict[str, float] = {}

        def sink(event: Event) -> None:
            if event.state == "done":
                seconds[f"{event.kind}/{event.id}"] = event.seconds

        calls.spans.clear()
        built.clear()
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        result = api.delete(spec, ctx, on_event=sink, observation=report.observation)
        if prof is not None:
            prof.disable()
        assert result.ok, [(e.key, e.error) for e in result.failed]
        kinds: dict[str, Kind | ControllerKind] = {**registry.kinds(), **controller_made.kinds()}
        obs = report.observation
        assert obs is not None
        deletes = [Change("delete", o.kind, o.id, o.id, {}, None, o) for o in obs.all_owned()]
        deps = delete_order.waits_for(deletes, lambda kind: kinds[kind].rank)
        path_s, path = delete_order.critical_path(deps, lambda key: seconds.get(key, 0.0))
        waves: dict[int, float] = {}
        for key, s in seconds.items():
            rank = kinds[key.split("/", 1)[0]].rank
            waves[rank] = max(waves.get(rank, 0.0), s)
        out: dict[str, Any] = {
            "resources": len(deletes), "read_s": read_s, "read_calls": reads, "clients_read": clients_read,
            "wall": result.seconds, "calls": len(calls.spans), "serial": sum(e - s for _, s, e in calls.spans),
            "critical": path_s, "path": path, "waves": sum(waves.values()), "rank_waves": len(waves),
            "clients_delete": len(built), "edges": sum(len(d) for d in deps.values()),
        }
        if prof is not None:
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            stats.sort_stats("tottime").print_stats(8)
            out["profile"] = text.getvalue()
            create = [(v[3], k) for k, v in stats.stats.items()  # type: ignore[attr-defined]
                      if k[2] in ("create_client", "_new_client")]
            out["client_seconds"] = max((c for c, _ in create), default=0.0)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold render runs")
    parser.add_argument("--rtt", type=float, default=0.04, help="seconds added before every AWS request")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of the delete")
    args = parser.parse_args()
    r = render(args.runs)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"render examples/ha.yaml cold ({args.runs} runs): wall median {r['wall_median']:.2f} s "
          f"(best {r['wall_best']:.2f}), CPU median {r['cpu_median']:.2f} s, peak RSS {r['rss_max']:.1f} MiB, "
          f"AWS SDK modules imported: {r['sdk']}")
    d = delete(args.rtt, args.profile)
    print(f"delete examples/ha.yaml, {d['resources']} resources, {args.rtt * 1000:.0f} ms per call:")
    print(f"  the one read (preview, reused by the delete): {d['read_s']:.2f} s, {d['read_calls']} calls, "
          f"{d['clients_read']} clients built")
    print(f"  delete wall {d['wall']:.2f} s | serial sum of its {d['calls']} calls {d['serial']:.2f} s | "
          f"critical path {d['critical']:.2f} s | rank waves with the same times {d['waves']:.2f} s "
          f"({d['rank_waves']} waves)")
    print(f"  wall / critical path {d['wall'] / max(d['critical'], 1e-9):.2f}x, serial / wall "
          f"{d['serial'] / max(d['wall'], 1e-9):.1f}x; clients built during the delete: {d['clients_delete']}; "
          f"graph edges: {d['edges']}")
    print("  critical path: " + " -> ".join(d["path"]))
    if "profile" in d:
        print(f"  client creation in the delete: {d['client_seconds']:.3f} s cumulative")
        print(d["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
