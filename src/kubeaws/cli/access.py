"""CLI commands `kubeaws render` (every generated artifact to a directory, no AWS call) and `kubeaws
kubeconfig` (an admin kubeconfig, printed, written or merged into ~/.kube/config: kubeadm, a client
certificate signed by the cluster CA; EKS, a user running `kubeaws token`; with `--tunnel`, one whose server
is the local end of `kubeaws tunnel`, kubeaws.cli.tunnel).

Registered on the main typer app by kubeaws.cli.main.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kubeaws.cli.common import BadInput, ClusterOptions, OutputFormat, connect, load, run
from kubeaws.cli.output import Out

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="The cluster spec (YAML).", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("render")(render)
    app.command("kubeconfig")(kubeconfig)


def render(file: SpecFile,
           out_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Directory to write into.")],
           account_id: Annotated[str, typer.Option("--account-id", help="AWS account the state bucket name and "
                                                   "role ARNs are derived from (default: an example account).")] = "",
           ) -> None:
    """Write every generated artifact (user data, kubeadm configs or EKS aws-auth / access entries, scripts,
    manifests, policies) without touching AWS."""
    out = Out("text")

    def body() -> int:
        from kubeaws.access import EXAMPLE_ACCOUNT, render_artifacts

        if account_id and not (account_id.isdigit() and len(account_id) == 12):
            raise BadInput(f"--account-id must be 12 digits, got {account_id!r}")
        spec = load(file)
        files = render_artifacts(spec, account_id or EXAMPLE_ACCOUNT)
        for rel, content in sorted(files.items()):
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            if rel.endswith(".sh"):
                path.chmod(0o755)
        out.print(f"wrote {len(files)} files to {out_dir}")
        if not account_id:
            out.info(f"[dim]bucket names and role ARNs use the example account {EXAMPLE_ACCOUNT}; pass "
                     "--account-id for yours[/dim]")
        return 0

    run(out, body)


def kubeconfig(file: SpecFile,
               merge: Annotated[bool, typer.Option("--merge", help="Add a context to ~/.kube/config ($KUBECONFIG) "
                                                   "without touching the others.")] = False,
               output_file: Annotated[Path | None, typer.Option("--output-file", help="Write here instead of "
                                                                "stdout.")] = None,
               lifetime: Annotated[float, typer.Option("--lifetime-hours", min=0.1, max=8760.0,
                                                       help="Validity of the client certificate "
                                                       "(kubeadm; EKS tokens are short-lived).")] = 24.0,
               profile: Annotated[str | None, typer.Option("--profile")] = None,
               region: Annotated[str | None, typer.Option("--region")] = None,
               local: Annotated[bool, typer.Option("--local")] = False,
               tunnel: Annotated[bool, typer.Option("--tunnel", help="Reach the API through the bastion tunnel: "
                                                    "server https://127.0.0.1:PORT, tls-server-name the endpoint, "
                                                    "context <cluster>-tunnel (open it with `kubeaws tunnel -f SPEC "
                                                    "--port PORT`).")] = False,
               port: Annotated[int | None, typer.Option("--port", min=1, max=65535, show_default=False,
                                                        help="With --tunnel: the tunnel's local port (default "
                                                        "16443).")] = None) -> None:
    """An admin kubeconfig for the cluster (kubeadm: client certificate signed by the cluster CA; EKS: a user
    running `kubeaws token`); with --tunnel, one that goes through `kubeaws tunnel`."""
    opts = ClusterOptions(file, OutputFormat.text, profile, region, local)
    out = Out("text")

    def body() -> int:
        from kubeaws import pki
        from kubeaws.access import admin_kubeconfig

        if port is not None and not tunnel:
            raise BadInput("--port is the local port of --tunnel: add --tunnel")
        spec = load(opts.file)
        result = admin_kubeconfig(spec, connect(spec, opts, out), lifetime)
        if tunnel:
            from kubeaws.cli.tunnel import tunnel_config
            from kubeaws.tunnel import DEFAULT_LOCAL_PORT

            local_port = port or DEFAULT_LOCAL_PORT
            result.text = tunnel_config(result, local_port)
            result.hint = (f"this kubeconfig goes through the bastion tunnel: keep `kubeaws tunnel -f {opts.file} "
                           f"--port {local_port}` running while you use it")
        if merge:
            target = Path(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
            existing = target.read_text() if target.exists() else None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(pki.merge_kubeconfig(existing, result.text))
            target.chmod(0o600)
            out.info(f"context {spec.metadata.name!r} merged into {target}")
        elif output_file:
            output_file.write_text(result.text)
            output_file.chmod(0o600)
            out.info(f"wrote {output_file}")
        else:
            out.text(result.text)
        if result.hint:
            out.info(result.hint)
        return 0

    run(out, body)
