"""The `kubeaws` command line: init, schema, plan, apply, status, delete, render, kubeconfig, token, doctor, and
`local start|stop|status`.

A thin layer over the Python API (kubeaws.api). Importing this module is cheap: boto3, the spec models and
the engine are imported inside the commands that need them, so `kubeaws --help` answers at once.
Console-script entry: `main()`.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kubeaws import __version__
from kubeaws.cli import access, day2, doctor, drill, eks, etcd, locking, meta, output, plan_file, rollout, tunnel
from kubeaws.cli.common import (
    DEFAULT_PARALLELISM,
    BadInput,
    ClusterOptions,
    LocalOpt,
    OutputFormat,
    OutputOpt,
    ParallelismOpt,
    ProfileOpt,
    RegionOpt,
    SpecFile,
    confirm,
    connect,
    load,
    run,
)
from kubeaws.cli.output import Out, Progress

app = typer.Typer(name="kubeaws", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
                  help="One YAML file to a Kubernetes cluster on AWS (kubeadm on EC2 or EKS): "
                       "plan, apply, status, delete.")
local_app = typer.Typer(no_args_is_help=True, help="The local AWS emulator (moto) used by --local.")
app.add_typer(local_app, name="local")
access.register(app)
eks.register(app)
doctor.register(app)
tunnel.register(app)
rollout.register(app)
locking.register(app)
etcd.register(app)
drill.register(app)
meta.register(app)
day2.register(app)


class Mode(StrEnum):
    kubeadm = "kubeadm"
    eks = "eks"


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Go on even when `kubeaws doctor` finds errors.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kubeaws {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit (all versions: `kubeaws "
                                                     "version`).")] = False,
          debug: Annotated[bool, typer.Option("--debug", "-v", help="Show every AWS call on stderr: service."
                                              "Operation, HTTP status or error code, duration.")] = False) -> None:
    """One YAML file to a Kubernetes cluster on AWS: plan, apply, status, delete."""
    if debug or "kubeaws.aws.session" in sys.modules:  # (set or reset: one process may run many commands)
        from kubeaws.aws import session

        session.trace_calls(sys.stderr if debug else None)


# -- spec helpers -----------------------------------------------------------------------------------------
@app.command()
def init(name: Annotated[str, typer.Option("--name", help="Cluster name (DNS label).")],
         region: Annotated[str, typer.Option("--region", help="AWS region, e.g. us-east-1.")],
         mode: Annotated[Mode, typer.Option("--mode", help="Self-managed kubeadm on EC2, or EKS.")] = Mode.kubeadm,
         out_file: Annotated[Path | None, typer.Option("--file", "--output-file", "-f", show_default=False,
                                                       help="Write the spec to this file (default: stdout); "
                                                            "then `kubeaws plan -f FILE`.")] = None,
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
         output_format: OutputOpt = OutputFormat.text) -> None:
    """Write a commented starter spec (text: YAML with every field explained; json/yaml: the same spec as
    data, without the comments)."""
    out = Out(output_format.value)

    def body() -> int:
        import yaml

        from kubeaws.spec.template import render_init

        if out_file is not None and out_file.exists() and not force:
            raise BadInput(f"{out_file} already exists; pass --force to overwrite it")
        text = render_init(name, region, mode=mode.value)
        if out_file is None:
            if out.json:
                out.emit(yaml.safe_load(text))
            out.text(text)
            return 0
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
        if out.json:
            out.emit({"file": str(out_file), "cluster": name, "region": region, "mode": mode.value})
        out.info(f"wrote {out_file}; next: kubeaws plan -f {out_file}")
        return 0

    run(out, body)


@app.command()
def schema(output_format: Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format (text is "
                                                               "JSON).")] = OutputFormat.json) -> None:
    """Print the JSON Schema of the spec file (for editors and CI validation)."""
    out = Out("yaml" if output_format == OutputFormat.yaml else "json")

    def body() -> int:
        from kubeaws.spec.schema import json_schema

        out.emit(json_schema())
        return 0

    run(out, body)


# -- cluster commands -----------------------------------------------------------------------------------
@app.command()
def plan(file: SpecFile, output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None,
         region: RegionOpt = None, local: LocalOpt = False, force: ForceOpt = False,
         out_file: plan_file.OutOpt = None) -> None:
    """Show what apply would change (read-only AWS calls); with --out, save it for `apply --plan`."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import api
        from kubeaws.engine.render import plan_text

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        the_plan = api.plan(spec, ctx, graph=doctor.preflight(out, spec, force, ctx))
        doc = the_plan.to_dict()
        if not out.json:
            out.text(plan_text(the_plan))
        if out_file is not None:
            doc["planFile"] = plan_file.save(out, opts, spec, ctx, the_plan, out_file)
        elif the_plan.pending and not out.json:
            out.info(f"[dim]apply with: {opts.command('apply')}[/dim]")
        if out.json:
            out.emit(doc)
        return 0

    run(out, body)


@app.command()
def apply(file: SpecFile, yes: YesOpt = False, output_format: OutputOpt = OutputFormat.text,
          profile: ProfileOpt = None, region: RegionOpt = None, local: LocalOpt = False,
          force: ForceOpt = False, parallelism: ParallelismOpt = DEFAULT_PARALLELISM,
          no_rollout: Annotated[bool, typer.Option("--no-rollout", help="Only update the configuration (launch "
                                                   "templates, groups, state); replace outdated instances later "
                                                   "with `kubeaws rollout`.")] = False,
          ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False, help="Private key for "
                                                       "the bastion tunnel to a private API (the addons' objects, "
                                                       "the rollout).")] = None,
          no_tunnel: Annotated[bool, typer.Option("--no-tunnel", help="Reach a private API directly (VPN, "
                                                  "or inside the VPC): the addons' objects and the rollout.")] = False,
          force_eks_update: Annotated[bool, typer.Option("--force-eks-update", help="EKS managed node groups: "
                                                         "replace the nodes even when a PodDisruptionBudget "
                                                         "refuses an eviction (UpdateNodegroupVersion's force; "
                                                         "the pods it protects stop with their node).")] = False,
          lock_timeout: locking.LockTimeoutOpt = "0",
          write_kubeconfig: Annotated[bool, typer.Option("--write-kubeconfig", help="Then write the cluster's "
                                                         "admin context into ~/.kube/config ($KUBECONFIG, or "
                                                         "--kubeconfig) and make it current, keeping the other "
                                                         "contexts.")] = False,
          kubeconfig_file: Annotated[Path | None, typer.Option("--kubeconfig", metavar="PATH", show_default=False,
                                                               help="The kubeconfig file --write-kubeconfig "
                                                                    "writes (implies it).")] = None,
          saved_plan: plan_file.PlanOpt = None) -> None:
    """Make AWS match the spec: show the plan, confirm, create/update/replace/delete in parallel; then roll
    the instances whose launch template changed (`kubeaws rollout`), unless --no-rollout. With --plan, exactly
    the plan saved by `kubeaws plan --out`, without asking, or nothing when the spec or AWS changed since."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import api
        from kubeaws.engine.render import plan_text
        from kubeaws.engine.types import ApplyResult

        reviewed = plan_file.read(saved_plan) if saved_plan is not None else None
        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        # The addons' objects go through the API, tunnelled with the user's key for a private endpoint.
        with api.kube_reach(spec, ctx, ssh_key=ssh_key, direct=True if no_tunnel else None, notify=out.info):
            ctx.force_eks_update = force_eks_update
            if reviewed is not None:
                plan_file.check_target(reviewed, spec, ctx)
            state = api.plan_state(spec, ctx, graph=doctor.preflight(out, spec, force, ctx))
            text = plan_text(state.plan)
            if out.json and not yes:
                out.info(text)
            out.text(text)
            if reviewed is not None:
                api.check_plan(reviewed, spec, ctx, state)  # before the lock: a stale plan makes nothing
            kubeconfig = access.write_kubeconfig if write_kubeconfig or kubeconfig_file else None
            if not state.plan.pending:
                out.print("[green]Nothing to apply.[/green]")
                doc = ApplyResult(cluster=state.plan.cluster, operation="apply").to_dict()
                if kubeconfig is not None:
                    doc["kubeconfig"] = kubeconfig(out, spec, ctx, kubeconfig_file)
                if out.json:
                    out.emit(doc)
                return 0
            if reviewed is None:  # a saved plan was reviewed when it was made
                confirm(out, yes, f'Apply these {state.plan.pending} changes to cluster "{spec.metadata.name}"?',
                        "apply")
            with locking.held(out, spec, ctx, "apply", locking.seconds(lock_timeout), create_home=True):
                # Planned again under the lock: another run may have changed the cluster since the plan above.
                fresh = api.plan_state(spec, ctx, graph=state.graph)
                if reviewed is not None:
                    api.check_plan(reviewed, spec, ctx, fresh)
                elif locking.plan_moved(state.plan, fresh.plan):
                    out.info("[yellow]the cluster changed since that plan; now:[/yellow]")
                    out.info(plan_text(fresh.plan))
                    confirm(out, yes, f'Apply these {fresh.plan.pending} changes instead?', "apply")
                with Progress(out, f"Applying {spec.metadata.name}") as progress:
                    result = api.apply(spec, ctx, plan=fresh, on_event=progress, max_workers=parallelism)
                if not out.json:
                    output.report_result(out, result, opts.command("apply"))
                doc = result.to_dict()
                if result.ok and kubeconfig is not None:
                    doc["kubeconfig"] = kubeconfig(out, spec, ctx, kubeconfig_file)
                if result.ok and not no_rollout:
                    ctx.limiter.set_concurrency(parallelism)
                    try:
                        doc["rollout"] = rollout.roll_after_apply(out, spec, ctx, ssh_key, no_tunnel)
                    except Exception:
                        out.info(f"the configuration is applied; finish the roll with `{opts.command('rollout')}`")
                        raise
            if out.json:
                out.emit(doc)
            return 0 if result.ok else 1

    run(out, body)


@app.command()
def status(file: SpecFile, output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None,
           region: RegionOpt = None, local: LocalOpt = False) -> None:
    """Show a summary (mode, Kubernetes version, endpoint; per group desired / in service / Ready), then
    what exists for the cluster and whether it matches the spec."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import api
        from kubeaws.cli.status_view import summary, summary_text

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        report = api.status(spec, ctx)
        head = summary(spec, ctx, report)
        if out.json:
            out.emit({"summary": head, **report.to_dict()})
        else:
            summary_text(out, head)
            output.report_status(out, report, opts.command("plan"))
        return 0

    run(out, body)


@app.command()
def delete(file: SpecFile, yes: YesOpt = False, output_format: OutputOpt = OutputFormat.text,
           profile: ProfileOpt = None, region: RegionOpt = None, local: LocalOpt = False,
           lock_timeout: locking.LockTimeoutOpt = "0", parallelism: ParallelismOpt = DEFAULT_PARALLELISM) -> None:
    """Delete everything kubeaws created for the cluster (brought VPCs/subnets are only untagged)."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import api
        from kubeaws.engine.types import ApplyResult, Event

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        # One read of the cluster serves the preview and the delete. It is made before the lock is held (the
        # preview and the confirmation come first): when another run held the lock meanwhile (waited for, or
        # taken over stale), it may have changed the cluster, and only then does the delete read it again.
        report = api.status(spec, ctx, every_kind=True)
        preview = Out("text") if out.json and not yes else out
        if out.json and not yes:
            preview.stdout = preview.stderr
        count = output.report_delete_preview(preview, report)
        if not count:
            out.print(f'[green]Nothing to delete[/green]: no resources found for cluster "{spec.metadata.name}".')
            if out.json:
                out.emit(ApplyResult(cluster=spec.metadata.name, operation="delete").to_dict())
            return 0
        confirm(out, yes, f'Delete these {count} resources of cluster "{spec.metadata.name}"?', "delete")
        with locking.held(out, spec, ctx, "delete", locking.seconds(lock_timeout), create_home=False) as lock, \
                Progress(out, f"Deleting {spec.metadata.name}") as progress:
            def sink(event: Event) -> None:
                if lock is not None and event.kind == "Bucket" and event.state == "started":
                    lock.stop_renewing()  # the lock goes with its bucket: no renewal may write into it now
                progress(event)

            fresh = lock is None or not lock.contended
            result = api.delete(spec, ctx, on_event=sink, observation=report.observation if fresh else None,
                                max_workers=parallelism)
        if out.json:
            out.emit(result.to_dict())
        else:
            output.report_result(out, result, opts.command("delete"))
        return 0 if result.ok else 1

    run(out, body)


# -- local emulator -------------------------------------------------------------------------------------
@local_app.command("start")
def local_start(port: Annotated[int | None, typer.Option("--port", help="Port (default: $KUBEAWS_LOCAL_PORT "
                                                                         "or 4599).")] = None,
                output_format: OutputOpt = OutputFormat.text) -> None:
    """Start the local AWS emulator (or reuse the running one) and print its URL."""
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.local import emulator

        url = emulator.ensure_running(port)
        if out.json:
            out.emit(emulator.status())
        else:
            out.print(f"local AWS emulator running at {url}")
            out.print("use it with --local (or KUBEAWS_LOCAL=1), e.g. kubeaws plan -f cluster.yaml --local")
        return 0

    run(out, body)


@local_app.command("stop")
def local_stop(output_format: OutputOpt = OutputFormat.text) -> None:
    """Stop the local AWS emulator (everything it held is gone)."""
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.local import emulator

        stopped = emulator.stop()
        if out.json:
            out.emit({"stopped": stopped})
        else:
            out.print("local AWS emulator stopped" if stopped else "local AWS emulator was not running")
        return 0

    run(out, body)


@local_app.command("status")
def local_status(output_format: OutputOpt = OutputFormat.text,
                 resources: Annotated[bool, typer.Option("--resources", help="Also count what moto holds "
                                                                             "(about a second).")] = False) -> None:
    """Whether the local AWS emulator runs, where, and since when."""
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.local import emulator

        info = emulator.status(resources=resources)
        if out.json:
            out.emit(info)
        else:
            output.local_status_text(out, info)
        return 0

    run(out, body)


def main() -> None:
    """Console-script entry point."""
    if meta.COMPLETE_VAR in os.environ:  # the shell asks for completions (`kubeaws completion SHELL`)
        meta.init_completion()
    try:
        app(prog_name="kubeaws")
    except BrokenPipeError:  # e.g. `kubeaws schema | head`: stop quietly
        sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the interpreter's final flush
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
