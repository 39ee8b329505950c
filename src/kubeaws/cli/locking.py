"""The cluster lock in the CLI (kubeaws.lock): `held(...)`, the block `apply`, `rollout` and `delete` run in,
with `--lock-timeout` (wait for another run, or exit 1 naming its holder), `plan_moved` (apply re-plans once
it holds the lock: what it confirmed may have changed meanwhile), and the command `kubeaws unlock -f SPEC`.
Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from kubeaws.cli.common import BadInput, ClusterOptions, OutputFormat, OutputOpt, SpecFile, confirm, connect, load, run
from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.engine.types import Plan
    from kubeaws.lock import ClusterLock
    from kubeaws.spec.models import ClusterSpec

LockTimeoutOpt = Annotated[str, typer.Option("--lock-timeout", help="How long to wait for another run that holds "
                                             "the cluster's lock (e.g. 90s, 10m); 0: fail at once naming it.")]


def seconds(text: str) -> float:
    from kubeaws.cli.doctor import parse_duration

    try:
        return parse_duration(text)
    except BadInput as exc:
        raise BadInput(str(exc).replace("--wait", "--lock-timeout")) from None


@contextmanager
def held(out: Out, spec: ClusterSpec, ctx: AwsContext, command: str, timeout: float, *,
         create_home: bool) -> Iterator[ClusterLock | None]:
    """The cluster's lock for the block (None when the cluster has no home for one and `create_home` is
    False: nothing is deployed)."""
    from rich.markup import escape

    from kubeaws import api

    lock = api.cluster_lock(spec, ctx, f"kubeaws {command}", create_home=create_home,
                            say=lambda text: out.info(f"[yellow]{escape(text)}[/yellow]"))
    if lock is None:
        yield None
        return
    lock.acquire(timeout)
    try:
        yield lock
    finally:
        lock.release()
        if lock.lost:
            out.info("[red]the cluster lock was broken while this run held it: another run may have changed the "
                     "cluster meanwhile; run `kubeaws plan` to see where it stands[/red]")


def plan_moved(confirmed: Plan, fresh: Plan) -> bool:
    """Whether the plan made once the lock is held differs from the one the user confirmed (the state
    bucket the lock itself created aside)."""
    def keys(plan: Plan) -> set[tuple[str, str]]:
        return {(c.action, c.key) for c in plan.changes if c.action != "noop" and c.kind != "Bucket"}

    return keys(confirmed) != keys(fresh)


def register(app: typer.Typer) -> None:
    app.command("unlock")(unlock)


def unlock(file: SpecFile,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           output_format: OutputOpt = OutputFormat.text,
           profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
           region: Annotated[str | None, typer.Option("--region", help="AWS region (overrides spec.region).")] = None,
           local: Annotated[bool, typer.Option("--local", help="Use the local AWS emulator.")] = False) -> None:
    """Break the cluster's lock. Only when the run that holds it is dead: two runs at once can duplicate
    resources (a lock not renewed for 10 minutes is taken over by the next run anyway)."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import api
        from kubeaws.lock import read
        from kubeaws.lock import unlock as break_lock

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        bucket = api.lock_home(spec, ctx, create=False)
        current = read(ctx, bucket) if bucket else None
        if bucket is None or current is None:
            out.print(f"[green]Not locked[/green]: cluster {spec.metadata.name} has no lock held.")
            if out.json:
                out.emit({"cluster": spec.metadata.name, "unlocked": None})
            return 0
        holder = current[0].describe(time.time())
        out.info(f"[yellow]warning[/yellow]: the lock is held by {holder}. Break it only if that run is dead: "
                 "two runs at once can duplicate resources.")
        confirm(out, yes, f'Break the lock of cluster "{spec.metadata.name}"?', "unlock")
        gone = break_lock(ctx, bucket)
        out.print(f"[green]Unlocked[/green] cluster {spec.metadata.name}.")
        if out.json:
            out.emit({"cluster": spec.metadata.name, "unlocked": gone.__dict__ if gone else None})
        return 0

    run(out, body)
