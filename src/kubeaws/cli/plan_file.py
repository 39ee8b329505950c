"""Saved plans in the CLI: `kubeaws plan --out FILE` writes the reviewed plan's fingerprint, `kubeaws apply
--plan FILE` applies exactly it or refuses (exit 1, the differences listed) when the spec or AWS changed
since; an unreadable, foreign or edited file is bad input (exit 2). The engine side is
kubeaws.engine.saved_plan. Used by the plan and apply commands of kubeaws.cli.main.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeaws.cli.common import BadInput, ClusterOptions
from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.engine.saved_plan import SavedPlan
    from kubeaws.engine.types import Plan
    from kubeaws.spec.models import ClusterSpec

OutOpt = Annotated[Path | None, typer.Option("--out", metavar="FILE", show_default=False,
                                             help="Also save the plan to FILE, to apply exactly it later with "
                                                  "`kubeaws apply --plan FILE` (holds digests, no values).")]
PlanOpt = Annotated[Path | None, typer.Option("--plan", metavar="FILE", show_default=False,
                                              help="Apply the plan saved by `kubeaws plan --out FILE`, without "
                                                   "asking; refused (exit 1) when the spec or AWS changed since.")]


def save(out: Out, opts: ClusterOptions, spec: ClusterSpec, ctx: AwsContext, plan: Plan, path: Path) -> str:
    """Write the plan's fingerprint to `path`; say how to apply it. Returns the path written."""
    from kubeaws import api

    saved = api.save_plan(spec, ctx, plan)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved.write(path)
    except OSError as exc:
        raise BadInput(f"cannot write the plan to {path}: {exc}") from None
    out.info(f"[dim]saved the plan to {path}; apply exactly it with: {opts.command('apply')} --plan {path}[/dim]")
    return str(path)


def read(path: Path) -> SavedPlan:
    """The saved plan at `path`; BadInput (exit 2) when it is missing, not a plan, or was edited."""
    from kubeaws.engine.saved_plan import PlanFileError, SavedPlan

    try:
        return SavedPlan.read(path)
    except PlanFileError as exc:
        raise BadInput(str(exc)) from None


def check_target(saved: SavedPlan, spec: ClusterSpec, ctx: AwsContext) -> None:
    """Refuse a plan for another account, region, partition, cluster, kubeaws or spec before anything is done
    (the lock would make the state bucket): StalePlanError, exit 1."""
    from kubeaws import api
    from kubeaws.engine.saved_plan import SavedPlan, StalePlanError, differences, spec_hash

    here = SavedPlan(cluster=spec.metadata.name, spec_hash=spec_hash(spec), target=api.target(ctx),
                     changes=saved.changes, observed=saved.observed)
    found = differences(saved, here)
    if found:
        raise StalePlanError(found)
