"""CLI command `kubeaws tunnel -f SPEC [--port N] [--ssh-key FILE] [--ssh-user USER]`: keeps an SSH tunnel
through the cluster's bastion to its (private) Kubernetes API open until Ctrl-C, and writes a kubeconfig that
uses it (`$KUBEAWS_HOME/tunnels/<cluster>.kubeconfig`: server https://127.0.0.1:PORT, `tls-server-name` the
endpoint's name, so kubectl verifies the certificate for the real endpoint). Text: `export KUBECONFIG=<file>`
on stdout, notes on stderr; JSON: one document (cluster, server, tlsServerName, kubeconfig, local port,
bastion), printed once the tunnel is open.

Also `tunnel_config`, the kubeconfig of `kubeaws kubeconfig --tunnel` (kubeaws.cli.access). The tunnel
itself is kubeaws.tunnel. Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeaws.cli.common import BadInput, ClusterOptions, OutputFormat, OutputOpt, SpecFile, connect, load, run
from kubeaws.cli.output import Out
from kubeaws.errors import KubeawsError

if TYPE_CHECKING:
    from kubeaws.access import Kubeconfig
    from kubeaws.spec.models import ClusterSpec
    from kubeaws.tunnel import Tunnel

PortOpt = Annotated[int | None, typer.Option("--port", min=1, max=65535, show_default=False,
                                             help="Local port on 127.0.0.1 (default: a free one).")]
SshKeyOpt = Annotated[Path | None, typer.Option("--ssh-key", show_default=False,
                                                help="Private key of the bastion's EC2 key pair (default: the SSH "
                                                     "agent's keys, then ~/.ssh/<access.sshKeyName>[.pem]).")]


def register(app: typer.Typer) -> None:
    app.command("tunnel")(tunnel)


def kubeconfig_path(cluster: str) -> Path:
    """Where `kubeaws tunnel` writes the kubeconfig that goes through it."""
    from kubeaws.local.emulator import home

    return home() / "tunnels" / f"{cluster}.kubeconfig"


def tunnel_config(config: Kubeconfig, port: int) -> str:
    """`config` (kubeaws.access.admin_kubeconfig) pointed at a tunnel on 127.0.0.1:`port`."""
    from kubeaws.tunnel import endpoint_of, tunnel_kubeconfig

    return tunnel_kubeconfig(config.text, f"https://127.0.0.1:{port}", endpoint_of(config.server)[0])


def check_key_file(key_file: Path | None) -> None:
    """BadInput (exit 2) when --ssh-key names no usable private key."""
    if key_file is None:
        return
    from kubeaws.tunnel import TunnelError, load_private_key

    try:
        load_private_key(key_file)
    except TunnelError as exc:
        raise BadInput(f"--ssh-key: {exc}") from None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text)
    path.chmod(0o600)


def tunnel(file: SpecFile, port: PortOpt = None, ssh_key: SshKeyOpt = None,
           ssh_user: Annotated[str | None, typer.Option("--ssh-user", show_default=False,
                                                        help="Login on the bastion (default: ec2-user on al2023, "
                                                        "ubuntu on Ubuntu: access.bastion.os).")] = None,
           lifetime: Annotated[float, typer.Option("--lifetime-hours", min=0.1, max=8760.0,
                                                   help="Validity of the kubeconfig's client certificate "
                                                   "(kubeadm; EKS tokens are short-lived).")] = 24.0,
           output_format: OutputOpt = OutputFormat.text,
           profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
           region: Annotated[str | None, typer.Option("--region", help="AWS region (overrides spec.region).")] = None,
           local: Annotated[bool, typer.Option("--local", help="Use the local AWS emulator.")] = False) -> None:
    """Keep an SSH tunnel through the bastion to the cluster's Kubernetes API open (until Ctrl-C), and print
    the KUBECONFIG that uses it."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws import tunnel as ssh
        from kubeaws.access import admin_kubeconfig

        spec = load(opts.file)
        check_key_file(ssh_key)
        ctx = connect(spec, opts, out)
        config = admin_kubeconfig(spec, ctx, lifetime)
        if not config.private:
            out.info("[dim]the API endpoint is public: a tunnel is not needed from access.adminCIDRs[/dim]")
        opened: Tunnel | None = None
        try:
            with ssh.open_tunnel(spec, ctx, config.server, port=port or 0, key_file=ssh_key, user=ssh_user,
                                 notify=lambda text: out.info(f"[yellow]{escape(text)}[/yellow]")) as t:
                opened = t
                path = kubeconfig_path(spec.metadata.name)
                _write(path, tunnel_config(config, t.local_port))
                host, api_port = ssh.endpoint_of(config.server)
                report(out, spec, t, f"{host}:{api_port}", path)
                t.wait()
        except KeyboardInterrupt:
            if opened is None:
                raise
            # Ctrl-C is how a user closes an open tunnel, whenever it comes (even while the report prints).
            out.info("tunnel closed")
            return 0
        lost = opened.bastion.instance_id if opened is not None else "?"
        raise KubeawsError(f"the SSH connection to the bastion {lost} was lost: run "
                           f"`{opts.command('tunnel')}` again")

    run(out, body)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def report(out: Out, spec: ClusterSpec, t: Tunnel, endpoint: str, path: Path) -> None:
    """What the tunnel is and how to use it: JSON once, or the KUBECONFIG line (stdout) and notes (stderr)."""
    b = t.bastion
    if out.json:
        out.emit({"cluster": spec.metadata.name, "server": t.server, "tlsServerName": t.server_name,
                       "localPort": t.local_port, "endpoint": endpoint, "kubeconfig": str(path),
                       "bastion": {"instanceId": b.instance_id, "address": b.address, "user": b.user}})
        return
    out.info(f"tunnel open: {t.server} -> {escape(endpoint)} through {b.user}@{b.address} ({b.instance_id}); "
             "Ctrl-C closes it")
    out.text(f"export KUBECONFIG={path}")
    out.info(f"[dim]then, in another shell: KUBECONFIG={path} kubectl get nodes[/dim]")
