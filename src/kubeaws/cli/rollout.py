"""CLI command `kubeaws rollout -f SPEC`: replace every instance whose launch-template version is not its group's
current one (what `kubeaws apply` changed), control-plane members one at a time, then node groups in batches,
each node drained and the cluster validated between steps. Also `roll_after_apply`, which `kubeaws apply` runs
once its changes are made (unless `--no-rollout`).

Text: the plan of the roll on stdout, one line per step on stderr while it runs; JSON: one document
`{cluster, rollout: [...], replaced: [...], seconds, dryRun}`. The work is kubeaws.rollout.operation.
Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubeaws.cli.common import (
    DEFAULT_PARALLELISM,
    BadInput,
    ClusterOptions,
    OutputFormat,
    OutputOpt,
    ParallelismOpt,
    SpecFile,
    confirm,
    connect,
    load,
    run,
)
from kubeaws.cli.locking import LockTimeoutOpt, held, seconds
from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.rollout.operation import RolloutOptions
    from kubeaws.spec.models import ClusterSpec

Minutes = Annotated[float, typer.Option(min=0.1, max=1440.0)]


def register(app: typer.Typer) -> None:
    app.command("rollout")(rollout)


def _say(out: Out) -> Callable[[str], None]:
    started = time.monotonic()

    def say(text: str) -> None:
        from rich.markup import escape

        out.info(f"[dim]{time.monotonic() - started:6.0f}s[/dim] {escape(text)}")

    return say


def execute(out: Out, spec: ClusterSpec, ctx: AwsContext, options: RolloutOptions, *, yes: bool, dry_run: bool,
            ask: bool = True) -> dict[str, Any]:
    """Plan the roll, show it (text), confirm (unless `ask` is False: the caller did), run it. The JSON
    document of what was done (the caller prints it). Raises when a step fails: the message says how to
    resume."""
    from kubeaws.rollout import operation

    try:
        rollout = operation.plan(spec, ctx, options)
    except operation.RolloutInputError as exc:
        raise BadInput(str(exc)) from None
    doc: dict[str, Any] = {"cluster": spec.metadata.name, "rollout": rollout.to_list(), "dryRun": dry_run,
                           "replaced": [], "seconds": 0.0}
    if rollout.empty:
        out.print("[green]Nothing to roll: every instance runs its group's current launch-template "
                  "version.[/green]")
        return doc
    lines = "\n".join(["Rollout:", *(f"  {line}" for line in rollout.lines())])
    out.text(lines)
    if out.json:
        out.info(lines)
    if dry_run:
        return doc
    if ask:
        count = sum(g.count for g in rollout.groups)
        confirm(out, yes, f'Replace these {count} instance(s) of cluster "{spec.metadata.name}"?', "roll")
    result = operation.run(spec, ctx, options, rollout, _say(out))
    out.print(f"[green]Rollout done[/green]: {len(result.replaced)} instance(s) replaced in {result.seconds:.0f}s")
    return {**doc, **result.to_dict()}


def rollout(file: SpecFile,
            group: Annotated[list[str] | None, typer.Option("--group", help="Only this group (spec name such as "
                             "a node group's name or control-plane-0, or the Auto Scaling group's name); "
                             "repeatable.", show_default=False)] = None,
            control_plane_only: Annotated[bool, typer.Option("--control-plane-only",
                                                             help="Only the control-plane members.")] = False,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replaced; change "
                                                                      "nothing.")] = False,
            cloud_only: Annotated[bool, typer.Option("--cloud-only", help="Do not use the Kubernetes API (no "
                                                     "drain, no readiness check, no validation): terminate and "
                                                     "wait for the instances only.")] = False,
            force: Annotated[bool, typer.Option("--force", help="Replace every instance, up to date or not.")] = False,
            parallel_groups: Annotated[int, typer.Option("--parallel-groups", min=1, max=50,
                                                         help="Node groups rolled at the same time.")] = 1,
            parallelism: ParallelismOpt = DEFAULT_PARALLELISM,
            drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0.1, max=1440.0,
                                                         help="Minutes to drain one node.")] = 15.0,
            validation_timeout: Annotated[float, typer.Option("--validation-timeout", min=0.1, max=1440.0,
                                                              help="Minutes for the cluster to validate after "
                                                                   "each step.")] = 10.0,
            ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False,
                                                         help="Private key for the bastion tunnel (private "
                                                              "API endpoint).")] = None,
            no_tunnel: Annotated[bool, typer.Option("--no-tunnel", help="Reach a private API directly (VPN, "
                                                    "or inside the VPC).")] = False,
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
            lock_timeout: LockTimeoutOpt = "0",
            output_format: OutputOpt = OutputFormat.text,
            profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
            region: Annotated[str | None, typer.Option("--region", help="AWS region (overrides spec.region).")] = None,
            local: Annotated[bool, typer.Option("--local", help="Use the local AWS emulator.")] = False) -> None:
    """Replace the instances that do not run their group's current launch-template version: control-plane
    members one at a time, then node groups (canary, then batches), each node drained and the cluster
    validated between steps. Interrupted, run it again: it resumes and never replaces an instance twice."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.rollout.operation import RolloutOptions
        from kubeaws.rollout.runner import Timeouts

        if control_plane_only and group:
            raise BadInput("--control-plane-only and --group: give one of them")
        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        ctx.limiter.set_concurrency(parallelism)
        options = RolloutOptions(groups=list(group or []), control_plane_only=control_plane_only,
                                 cloud_only=cloud_only or _emulator_cloud_only(out, ctx, cloud_only), force=force,
                                 parallel_groups=parallel_groups,
                                 timeouts=Timeouts(drain=drain_timeout * 60, validation=validation_timeout * 60),
                                 ssh_key=ssh_key, direct=no_tunnel)
        if dry_run:
            doc = execute(out, spec, ctx, options, yes=yes, dry_run=True)
        else:
            with held(out, spec, ctx, "rollout", seconds(lock_timeout), create_home=False):
                doc = execute(out, spec, ctx, options, yes=yes, dry_run=False)
        if out.json:
            out.emit(doc)
        return 0

    run(out, body)


def _emulator_cloud_only(out: Out, ctx: AwsContext, asked: bool) -> bool:
    """The local emulator boots nothing and has no Kubernetes API: a roll there is cloud-only, and says so."""
    if not ctx.capabilities.boots_instances and not asked:
        out.info("[dim]local emulator: no Kubernetes API behind it, the roll is cloud-only (no drain, no "
                 "validation)[/dim]")
        return True
    return False


def roll_after_apply(out: Out, spec: ClusterSpec, ctx: AwsContext, ssh_key: Path | None,
                     no_tunnel: bool) -> dict[str, Any]:
    """What `kubeaws apply` runs after its changes: the roll they imply (shown in the plan the user confirmed),
    as `execute` returns it."""
    from kubeaws.rollout.operation import RolloutOptions

    options = RolloutOptions(cloud_only=_emulator_cloud_only(out, ctx, False), ssh_key=ssh_key,
                             direct=no_tunnel)
    return execute(out, spec, ctx, options, yes=True, dry_run=False, ask=False)
