"""Timings of a real-AWS run, for the docs: each cluster records its steps in `timings-<variant>.json` under
the run's artifacts directory (saved after every step, so an interrupted run keeps what it measured); the
terminal summary (tests/aws/conftest.py) merges the files into one table and, with KUBEAWS_AWS_E2E_REPORT set,
one JSON document.

File handling aside, pure (unit-tested in test_helpers.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Steps in the order a run goes through them (table rows); unknown steps follow in their recorded order.
STEP_ORDER = (
    "plan", "apply", "doctor-live", "kubeconfig", "nodes-ready", "pod-network", "dns", "ebs-volume",
    "load-balancer", "metrics", "autoscaler", "cp-recovery", "k8s-cleanup", "delete", "leftover-check",
)
STEP_TITLES = {
    "plan": "kubeaws plan",
    "apply": "kubeaws apply (wall)",
    "doctor-live": "doctor --live passes (from apply start)",
    "kubeconfig": "kubeaws kubeconfig",
    "nodes-ready": "all nodes Ready (from apply start)",
    "pod-network": "pod-to-pod across nodes/AZs",
    "dns": "DNS (service + headless)",
    "ebs-volume": "EBS volume (PVC write, re-read)",
    "load-balancer": "LoadBalancer Service reached",
    "metrics": "kubectl top nodes answers",
    "autoscaler": "cluster-autoscaler scale-up",
    "cp-recovery": "control-plane member recovery",
    "k8s-cleanup": "in-cluster cleanup before delete",
    "delete": "kubeaws delete (wall)",
    "leftover-check": "leftover check",
}


@dataclass
class Timing:
    step: str
    seconds: float
    ok: bool = True
    note: str = ""


@dataclass
class Timings:
    """The measurements of one cluster, saved to `path` after each change."""

    path: Path
    variant: str
    cluster: str
    steps: list[Timing] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def record(self, step: str, seconds: float, ok: bool = True, note: str = "") -> None:
        self.steps = [t for t in self.steps if t.step != step]
        self.steps.append(Timing(step, round(seconds, 1), ok, note[:300]))
        self.save()

    def fact(self, key: str, value: Any) -> None:
        self.facts[key] = value
        self.save()

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "cluster": self.cluster, "savedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime()),
                "steps": [asdict(t) for t in self.steps], "facts": self.facts}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        tmp.replace(self.path)


def load_runs(directory: Path) -> list[dict[str, Any]]:
    """Every cluster's timings file in the run's artifacts directory (unreadable files are skipped)."""
    runs = []
    for path in sorted(directory.glob("timings-*.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return runs


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Steps as rows, clusters as columns; a failed step reads `FAILED after <time>`; `-` when not measured."""
    if not runs:
        return "(no timings recorded)"
    columns = [f"{r.get('variant')} ({r.get('cluster')})" for r in runs]
    cells: list[dict[str, str]] = []
    seen: list[str] = []
    for run in runs:
        row: dict[str, str] = {}
        for t in run.get("steps") or []:
            step = str(t.get("step"))
            if step not in seen:
                seen.append(step)
            text = _duration(float(t.get("seconds", 0)))
            row[step] = text if t.get("ok", True) else f"FAILED after {text}"
        cells.append(row)
    order = [s for s in STEP_ORDER if s in seen] + [s for s in seen if s not in STEP_ORDER]
    header = ["step", *columns]
    rows = [[STEP_TITLES.get(step, step), *(c.get(step, "-") for c in cells)] for step in order]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]

    def fmt(line: Iterable[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


def build_report(runs: Sequence[Mapping[str, Any]], *, run_id: str, region: str) -> dict[str, Any]:
    """The KUBEAWS_AWS_E2E_REPORT document: per cluster, seconds per step and the facts it recorded."""
    clusters = {}
    for run in runs:
        clusters[str(run.get("variant"))] = {
            "cluster": run.get("cluster"),
            "seconds": {t["step"]: t["seconds"] for t in run.get("steps") or []},
            "failed": [t["step"] for t in run.get("steps") or [] if not t.get("ok", True)],
            "facts": run.get("facts") or {},
        }
    return {"runId": run_id, "region": region, "clusters": clusters}
