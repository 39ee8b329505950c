"""CLI commands `kubeaws etcd snapshot -f SPEC` (a snapshot now, from a healthy member, through a Job on its node:
the member's own backup script, verified with etcdutl, uploaded next to the timer's), `kubeaws etcd list -f
SPEC` (every snapshot in the state bucket with time, size, revision, member and Kubernetes version) and
`kubeaws etcd restore -f SPEC --snapshot ID [--yes]` (every member restored from one snapshot as a new etcd
cluster, after the plan and a confirmation). Text: a line or a table on stdout; JSON: `{cluster, snapshot:
{...}}` / `{cluster, bucket, snapshots: [...]}` / `{cluster, restore: {...}}`. The work is kubeaws.etcd_ops and
kubeaws.etcd_restore. Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeaws.cli.common import (
    BadInput,
    ClusterOptions,
    LocalOpt,
    OutputFormat,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    SpecFile,
    connect,
    load,
    run,
)
from kubeaws.cli.output import Out

if TYPE_CHECKING:
    from kubeaws.etcd_ops import Snapshot


etcd_app = typer.Typer(help="etcd of a kubeadm cluster: snapshots in the state bucket, restore.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(etcd_app, name="etcd")


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _line(snap: Snapshot) -> str:
    return (f"{snap.id}  {snap.time:%Y-%m-%d %H:%M:%S} UTC  {_size(snap.size)}  revision {snap.revision}  "
            f"Kubernetes {snap.kubernetes_version or '?'}")


@etcd_app.command("snapshot")
def snapshot(file: SpecFile,
             node: Annotated[str | None, typer.Option("--node", show_default=False,
                                                      help="Take it on this control-plane node (default: the "
                                                           "first healthy member).")] = None,
             timeout: Annotated[float, typer.Option("--timeout", min=0.5, max=120.0,
                                                    help="Minutes to wait for the snapshot.")] = 10.0,
             ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False,
                                                          help="Private key for the bastion tunnel (private "
                                                               "API endpoint).")] = None,
             no_tunnel: Annotated[bool, typer.Option("--no-tunnel", help="Reach a private API directly (VPN, "
                                                     "or inside the VPC).")] = False,
             output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None, region: RegionOpt = None,
             local: LocalOpt = False) -> None:
    """Take an etcd snapshot now from a healthy member (a Job on its node runs the member's backup script:
    no port opened, no new secret), verified with etcdutl and uploaded next to the timer's snapshots."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from rich.markup import escape

        from kubeaws import etcd_ops
        from kubeaws.reach import api_client

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        with api_client(spec, ctx, ctx.policy, ssh_key=ssh_key, direct=no_tunnel,
                        notify=lambda t: out.info(f"[dim]{escape(t)}[/dim]")) as kube:
            snap = etcd_ops.take_snapshot(spec, ctx, kube, node=node, timeout=timeout * 60,
                                          say=lambda t: out.info(f"[dim]{escape(t)}[/dim]"))
        out.print(f"[green]Snapshot taken[/green]: {escape(_line(snap))}")
        if out.json:
            out.emit({"cluster": spec.metadata.name, "snapshot": snap.to_dict()})
        return 0

    run(out, body)


@etcd_app.command("list")
def list_(file: SpecFile, output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None,
          region: RegionOpt = None, local: LocalOpt = False) -> None:
    """Every etcd snapshot in the state bucket, newest first: time, size, revision, member, Kubernetes version."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import etcd_ops

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        bucket = etcd_ops.state_bucket(spec, ctx)
        snaps = etcd_ops.list_snapshots(ctx, bucket)
        if out.json:
            out.emit({"cluster": spec.metadata.name, "bucket": bucket,
                           "snapshots": [s.to_dict() for s in snaps]})
            return 0
        if not snaps:
            out.print(f"No etcd snapshot in s3://{bucket}/{etcd_ops.PREFIX} yet.")
            return 0
        rows = [("ID", "TIME (UTC)", "SIZE", "REVISION", "MEMBER", "KUBERNETES")]
        rows += [(s.id, f"{s.time:%Y-%m-%d %H:%M:%S}", _size(s.size), str(s.revision or "-"), str(s.member),
                  s.kubernetes_version or "-") for s in snaps]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out.text(f"etcd snapshots of {spec.metadata.name} in s3://{bucket}/{etcd_ops.PREFIX}, newest first:")
        out.text("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows))
        return 0

    run(out, body)


@etcd_app.command("restore")
def restore(file: SpecFile,
            snapshot_id: Annotated[str, typer.Option("--snapshot", show_default=False,
                                                     help="The snapshot to restore, as `kubeaws etcd list` shows "
                                                          "its ID (member-<i>/<time>).")],
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
            ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False,
                                                         help="Private key for the bastion tunnel (private "
                                                              "API endpoint), for the validation.")] = None,
            no_tunnel: Annotated[bool, typer.Option("--no-tunnel", help="Reach a private API directly (VPN, "
                                                    "or inside the VPC).")] = False,
            output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None, region: RegionOpt = None,
            local: LocalOpt = False) -> None:
    """Restore etcd on every control-plane member from ONE snapshot (etcd's disaster recovery): the API is down
    meanwhile and everything written after the snapshot is lost. Shows the plan and asks first; an interrupted
    restore is resumed by running the same command again."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        import datetime as dt
        from contextlib import ExitStack

        from rich.markup import escape

        from kubeaws import api, etcd_restore
        from kubeaws.reach import api_client
        from kubeaws.rollout.kube_ops import KubeCluster

        spec = load(opts.file)
        ctx = connect(spec, opts, out)
        try:
            plan = etcd_restore.plan_restore(spec, ctx, snapshot_id)
        except etcd_restore.RestoreRefused as exc:
            raise BadInput(f"--snapshot {snapshot_id}: refused: {exc}") from None
        for line in plan.lines(dt.datetime.now(dt.UTC)):
            out.info(escape(line))
        if not yes:
            if out.json or not sys.stdin.isatty():
                raise BadInput("refusing to restore etcd without confirmation: not running on a terminal. Review "
                               "the plan above, then re-run with --yes")
            if not typer.confirm("Restore etcd (the API goes down, later writes are lost)?", default=False):
                out.print("Nothing done.")
                return 1

        def say(text: str) -> None:
            out.info(f"[dim]{escape(text)}[/dim]")

        with ExitStack() as stack:
            lock = api.cluster_lock(spec, ctx, "etcd restore", say=say)
            if lock is not None:
                stack.enter_context(lock)
            clients: list[KubeCluster] = []

            def validate() -> list[str]:
                if not clients:  # opened once etcd is back: the API (and the tunnel's target) may be down before
                    kube = stack.enter_context(api_client(spec, ctx, ctx.policy, ssh_key=ssh_key, direct=no_tunnel,
                                                          notify=say))
                    clients.append(KubeCluster(kube, spec, ctx.policy, say))
                return clients[0].problems()

            result = etcd_restore.run_restore(spec, ctx, plan, validate=validate, say=say)
        downtime = f", API down {result.downtime:.0f}s" if result.downtime is not None else ""
        out.print(f"[green]etcd restored[/green] from {escape(result.snapshot)}: new etcd cluster "
                  f"{escape(result.cluster_id)} on {len(result.members)} members{downtime}")
        if out.json:
            out.emit({"cluster": spec.metadata.name, "restore": result.to_dict()})
        return 0

    run(out, body)
