"""CLI commands for day 2 without a plan: `kubeaws get clusters` (every kubeaws cluster of the account, by
tag, no spec file needed) and `kubeaws scale -f SPEC GROUP --desired N [--min M] [--max X] [--write-spec]`
(a node group's size now, under the cluster's lock, then whether the spec agrees, with the offer to write the
new size into the spec file, comments kept).

The work is in kubeaws.day2 (discover, scale) and kubeaws.spec.edit. Registered on the main typer app by
kubeaws.cli.main (`day2.register(app)`).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeaws.cli import locking
from kubeaws.cli.common import (
    BadInput,
    ClusterOptions,
    LocalOpt,
    OutputFormat,
    OutputOpt,
    ProfileOpt,
    SpecFile,
    connect,
    load,
    reads_stdin,
    run,
)
from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.day2.discover import Discovery
    from kubeaws.day2.scale import ScaleResult, Sizes

get_app = typer.Typer(no_args_is_help=True, help="List what exists without a spec file.")


def register(app: typer.Typer) -> None:
    app.add_typer(get_app, name="get")
    get_app.command("clusters")(get_clusters)
    app.command("scale")(scale)


# -- get clusters -------------------------------------------------------------------------------------
def get_clusters(region: Annotated[str | None, typer.Option("--region", help="The region to look in (default: "
                                                            "the SDK's, e.g. AWS_REGION).")] = None,
                 all_regions: Annotated[bool, typer.Option("--all-regions", help="Look in every region enabled "
                                                           "for the account (DescribeRegions), in parallel.")] = False,
                 output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None,
                 local: LocalOpt = False) -> None:
    """Every kubeaws cluster of the account, found by its tags (no spec file): name, mode, Kubernetes
    version, region, node groups (desired size), age."""
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.day2.discover import discover, enabled_regions

        endpoint = _endpoint(local, profile, out)
        home = region or _default_region(profile) or ("us-east-1" if all_regions else None)
        if home is None:
            raise BadInput("no AWS region: pass --region REGION (or --all-regions), or set AWS_REGION")
        ctx = _context(home, profile, endpoint)  # every region's context shares its botocore session
        regions = enabled_regions(ctx) if all_regions else [home]
        found = discover(regions, ctx.in_region)
        if out.json:
            out.emit(found.to_dict(dt.datetime.now(dt.UTC)))
        else:
            _clusters_text(out, found, all_regions)
        return 0

    run(out, body)


def _endpoint(local: bool, profile: str | None, out: Out) -> str | None:
    """The local emulator's URL with --local (started if needed; its environment set), else None."""
    opts = ClusterOptions(Path("-"), local=local, profile=profile)
    if not opts.use_local:
        return None
    from kubeaws.local import emulator

    endpoint = emulator.ensure_running()
    env = emulator.local_environment(endpoint)
    if profile:
        env = {k: v for k, v in env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    os.environ.update(env)
    if not out.json:
        out.info(f"[dim]using the local AWS emulator at {endpoint}[/dim]")
    return endpoint


def _default_region(profile: str | None) -> str | None:
    import botocore.session

    value = botocore.session.Session(profile=profile).get_config_variable("region")
    return str(value) if value else None


def _context(region: str, profile: str | None, endpoint: str | None) -> AwsContext:
    from kubeaws.aws.session import AwsContext, settings_from_env

    return AwsContext(settings_from_env(region, profile, endpoint), cluster="")


def _clusters_text(out: Out, found: Discovery, all_regions: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    for region, reason in sorted(found.skipped.items()):
        out.info(f"[yellow]skipped region {escape(region)}[/yellow]: {escape(reason)}")
    where = (f"{len(found.regions) - len(found.skipped)} regions" if all_regions
             else ", ".join(found.regions))
    if not found.clusters:
        out.print(f"No kubeaws clusters found in {escape(where)}.")
        return
    now = dt.datetime.now(dt.UTC)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "MODE", "VERSION", "REGION", "NODE GROUPS (DESIRED)", "AGE"):
        table.add_column(column)
    for c in found.clusters:
        doc = c.to_dict(now)
        groups = ", ".join(f"{g.name} ({g.desired if g.desired is not None else '-'})" for g in c.groups)
        if c.control_plane:
            groups = f"control plane ({c.control_plane})" + (f", {groups}" if groups else "")
        table.add_row(escape(c.name), c.mode or "-", escape(c.version or "-"), c.region, escape(groups or "-"),
                      doc["age"] or "-")
    out.stdout.print(table)


# -- scale ----------------------------------------------------------------------------------------------
def scale(group: Annotated[str, typer.Argument(help="The node group: its spec.nodeGroups[].name.",
                                               show_default=False)],
          file: SpecFile,
          desired: Annotated[int, typer.Option("--desired", help="The number of nodes to run now.",
                                               show_default=False)],
          minimum: Annotated[int | None, typer.Option("--min", help="Also set the group's minimum.",
                                                      show_default=False)] = None,
          maximum: Annotated[int | None, typer.Option("--max", help="Also set the group's maximum.",
                                                      show_default=False)] = None,
          write_spec: Annotated[bool, typer.Option("--write-spec", help="Write the new size into the spec file "
                                                   "(comments kept) when it differs; without it, asked on a "
                                                   "terminal.")] = False,
          output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None,
          region: Annotated[str | None, typer.Option("--region", help="AWS region for the calls (overrides "
                                                     "spec.region).")] = None,
          local: LocalOpt = False, lock_timeout: locking.LockTimeoutOpt = "0") -> None:
    """Set a node group's size now (its Auto Scaling group, or EKS managed node group), then say whether
    the spec agrees and offer to write the new size into it."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.day2 import scale as sc

        spec = load(opts.file)
        try:
            sc.node_group(spec, group)
            if write_spec and reads_stdin(opts.file):
                raise sc.SizeError("--write-spec needs the spec in a file (-f FILE), not on stdin")
            ctx = connect(spec, opts, out)
            with locking.held(out, spec, ctx, "scale", locking.seconds(lock_timeout), create_home=False):
                target = sc.find_target(spec, ctx, group)  # under the lock: as it is now
                sizes = sc.resolve_sizes(target, desired, minimum, maximum)
                sc.set_size(ctx, target, sizes)
        except sc.SizeError as exc:
            raise BadInput(str(exc)) from None
        result = sc.ScaleResult(target, sizes, sc.spec_sizes(sc.node_group(spec, group)),
                                notes=sc.disagreements(spec, group, sizes), changed=sizes != target.before)
        _report_scale(out, result)
        if result.notes:
            result.spec_written = _write_back(out, opts.file, group, sizes, write_spec)
        if out.json:
            out.emit(result.to_dict())
        return 0

    run(out, body)


def _report_scale(out: Out, result: ScaleResult) -> None:
    from rich.markup import escape

    t = result.target
    what = "EKS managed node group" if t.type == "managed" else "Auto Scaling group"
    if result.changed:
        out.print(f"[green]Scaled[/green] node group {escape(t.group)} ({what} {escape(t.aws_name)}): "
                  f"{t.before.text()} -> {result.after.text()}")
    else:
        out.print(f"Node group {escape(t.group)} ({what} {escape(t.aws_name)}) is already at "
                  f"{result.after.text()}.")
    if not result.notes:
        out.print("The spec agrees.")
        return
    out.print("[yellow]The spec does not agree:[/yellow]")
    for note in result.notes:
        out.print(f"  - {escape(note)}")


def _write_back(out: Out, path: Path, group: str, sizes: Sizes, write: bool) -> str | None:
    """Write the new size into the spec file when asked (--write-spec, or yes on a terminal); the file's
    path when written."""
    from rich.markup import escape

    from kubeaws.spec.edit import EditError, set_group_size

    hint = f"to write it into the spec: the same command with --write-spec, or edit {path}"
    if reads_stdin(path):
        out.info("the spec came from stdin: edit the file it came from to match")
        return None
    if not write:
        if out.json or not sys.stdin.isatty() or not sys.stdout.isatty():
            out.info(hint)
            return None
        if not typer.confirm(f"Write size {{min: {sizes.min}, desired: {sizes.desired}, max: {sizes.max}}} of "
                             f"group {group} into {path}?", default=False):
            return None
    try:
        text = set_group_size(path.read_text(encoding="utf-8"), group,
                              {"min": sizes.min, "desired": sizes.desired, "max": sizes.max})
    except EditError as exc:
        out.info(f"[yellow]the spec was not changed[/yellow]: {escape(str(exc))}")
        return None
    tmp = path.with_name(f".{path.name}.kubeaws-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    out.print(f"[green]Wrote[/green] the new size into {escape(str(path))} (comments kept).")
    return str(path)
