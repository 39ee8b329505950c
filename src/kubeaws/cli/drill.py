"""CLI command `kubeaws drill -f SPEC --member N [--yes] [--force]`: the self-heal drill of a kubeadm control
plane (kubeaws.drill): terminate one member's instance, follow its replacement, validate etcd and the API, and
report the time to recover by phase. Text: the plan and one line per phase; JSON/YAML: `{cluster, drill:
{member, terminated, replacement, node, phases: [{phase, seconds}], secondsToRecover}}`. Confirmation is
required (non-TTY without --yes: exit 2); the cluster lock is held while it runs. Registered on the main typer
app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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
from kubeaws.cli.locking import LockTimeoutOpt, held, seconds
from kubeaws.cli.output import Out


def register(app: typer.Typer) -> None:
    app.command("drill")(drill)


def drill(file: SpecFile,
          member: Annotated[int, typer.Option("--member", show_default=False,
                                              help="The control-plane member to terminate (0 to "
                                                   "controlPlane.count - 1).")],
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
          force: Annotated[bool, typer.Option("--force", help="Also on a one-member control plane (the API is "
                                              "down until the replacement is back).")] = False,
          timeout: Annotated[float, typer.Option("--timeout", min=1.0, max=240.0,
                                                 help="Minutes for each phase of the recovery.")] = 20.0,
          ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False,
                                                       help="Private key for the bastion tunnel (private "
                                                            "API endpoint).")] = None,
          no_tunnel: Annotated[bool, typer.Option("--no-tunnel", help="Reach a private API directly (VPN, "
                                                  "or inside the VPC).")] = False,
          lock_timeout: LockTimeoutOpt = "0",
          output_format: OutputOpt = OutputFormat.text, profile: ProfileOpt = None, region: RegionOpt = None,
          local: LocalOpt = False) -> None:
    """Self-heal drill: terminate one control-plane member's instance (as if it died), follow its Auto Scaling
    group's replacement, validate etcd and the API, and report the time to recover. Refused when etcd is not
    entirely healthy (it could lose quorum), and on a one-member control plane unless --force."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from rich.markup import escape

        from kubeaws import drill as drills
        from kubeaws.reach import api_client

        spec = load(opts.file)
        try:
            drills.member_group(spec, member)
        except drills.DrillInputError as exc:
            raise BadInput(str(exc)) from None
        if not yes and (out.json or not sys.stdin.isatty()):
            raise BadInput("refusing to terminate a control-plane member without confirmation: not running on a "
                           "terminal. Re-run with --yes")
        ctx = connect(spec, opts, out)

        def say(text: str) -> None:
            out.info(f"[dim]{escape(text)}[/dim]")

        with api_client(spec, ctx, ctx.policy, ssh_key=ssh_key, direct=no_tunnel, notify=say) as kube:
            plan = drills.plan_drill(spec, ctx, kube, member, force=force)
            for line in plan.lines():
                out.info(escape(line))
            if not yes and not typer.confirm(f"Terminate instance {plan.instance.id} now?", default=False):
                out.print("Nothing done.")
                return 1
            with held(out, spec, ctx, "drill", seconds(lock_timeout), create_home=False):
                minutes = timeout * 60
                result = drills.run_drill(spec, ctx, kube, plan, say=say, timeouts=drills.Timeouts(
                    instance=minutes, node=minutes, etcd=minutes, validation=minutes))
        out.print(f"[green]Recovered[/green]: member {member} ({escape(result.terminated)} -> "
                  f"{escape(result.replacement)}) in {result.seconds:.0f}s: "
                  + ", ".join(f"{p} {s:.0f}s" for p, s in result.phases))
        if out.json:
            out.emit({"cluster": spec.metadata.name, "drill": result.to_dict()})
        return 0

    run(out, body)
