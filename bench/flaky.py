"""Applies through a flaky network (a script, not a test): `python bench/flaky.py [--runs 5] [--spec ...]`.

For each drop rate (default 0%, 3%, 5% of the answers lost, half before the request reaches the emulator,
half after it acted: tests/faulty_proxy.py), applies the spec (default examples/ha.yaml) N times, each on a
freshly reset private moto server through the proxy with a different seed, with the default worker pool,
and prints per rate: applies that finished the first time, seconds (median), faults injected, and the
duplicates found afterwards (resources of a kind beyond what the spec asks for, read with plain describes),
and whether the delete through the same proxy finished first time and left nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "src")]
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
os.environ.pop("AWS_ENDPOINT_URL", None)

from tests.conftest import make_ctx  # noqa: E402
from tests.faulty_proxy import FaultRates, FaultyProxy  # noqa: E402
from tests.test_faults import inventory, new_since  # noqa: E402

from kubeaws import api  # noqa: E402  (after the environment is set)
from kubeaws.local import emulator  # noqa: E402
from kubeaws.model import build  # noqa: E402
from kubeaws.resources import registry  # noqa: E402
from kubeaws.spec.load import load_spec  # noqa: E402


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "examples" / "ha.yaml"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rates", default="0,0.03,0.05")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    wanted = {kind: len(build(spec).of_kind(kind)) for kind in registry.kinds()}
    table = Table(title=f"{Path(args.spec).name}: apply + delete through a proxy losing answers ({args.runs} runs)")
    for col in ("lost answers", "applies OK first time", "apply s (median)", "faults injected", "duplicates",
                "deletes OK first time", "left after delete"):
        table.add_column(col, justify="right")
    proc, url = emulator.launch()
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            ok = deleted = dups = left = faults = 0
            seconds: list[float] = []
            for seed in range(1, args.runs + 1):
                reset(url)
                direct = make_ctx(url, spec.metadata.name)
                before = inventory(direct)
                with FaultyProxy(url, FaultRates.dropping(rate), seed=seed) as proxy:
                    ctx = make_ctx(proxy.url, spec.metadata.name)
                    t0 = time.monotonic()
                    result = api.apply(spec, ctx)
                    seconds.append(time.monotonic() - t0)
                    ok += result.ok
                    made = new_since(before, direct)
                    dups += sum(max(0, n - wanted.get(kind, 0)) for kind, n in made.items())
                    gone = api.delete(spec, ctx)
                    deleted += gone.ok
                    left += sum(new_since(before, direct).values())
                    faults += sum(proxy.stats.faults.values())
            table.add_row(f"{rate:.0%}", f"{ok}/{args.runs}", f"{statistics.median(seconds):.1f}", str(faults),
                          str(dups), f"{deleted}/{args.runs}", str(left))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
