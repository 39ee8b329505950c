"""CLI commands `kubeaws render` (every generated artifact to a directory, no AWS call) and `kubeaws
kubeconfig` (an admin kubeconfig, printed, written or merged into ~/.kube/config: kubeadm, a client
certificate signed by the cluster CA; EKS, a user running `kubeaws token`; with `--tunnel`, one whose server
is the local end of `kubeaws tunnel`, kubeaws.cli.tunnel).

Also the kubeconfig file writing shared with `kubeaws apply --write-kubeconfig` (`write_kubeconfig`).
Registered on the main typer app by kubeaws.cli.main.
"""

from __future__ import annotations

import os
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
    from kubeaws.aws.session import AwsContext
    from kubeaws.spec.models import ClusterSpec


def register(app: typer.Typer) -> None:
    app.command("render")(render)
    app.command("kubeconfig")(kubeconfig)


def render(file: SpecFile,
           out_dir: Annotated[Path, typer.Option("--output-dir", "-d", help="Directory to write into.")],
           account_id: Annotated[str, typer.Option("--account-id", help="AWS account the state bucket name and "
                                                   "role ARNs are derived from (default: an example account).")] = "",
           output_format: OutputOpt = OutputFormat.text) -> None:
    """Write every generated artifact (user data, kubeadm configs or EKS aws-auth / access entries, scripts,
    manifests, policies) without touching AWS."""
    out = Out(output_format.value)

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
        if out.json:
            out.emit({"cluster": spec.metadata.name, "directory": str(out_dir),
                      "accountId": account_id or EXAMPLE_ACCOUNT, "files": sorted(files)})
        out.print(f"wrote {len(files)} files to {out_dir}")
        if not account_id:
            out.info(f"[dim]bucket names and role ARNs use the example account {EXAMPLE_ACCOUNT}; pass "
                     "--account-id for yours[/dim]")
        return 0

    run(out, body)


def kubeconfig_target(path: Path | None = None) -> Path:
    """The kubeconfig file to write into: `path`, else the first file of $KUBECONFIG, else ~/.kube/config
    (the file kubectl writes new entries into)."""
    if path is not None:
        return path.expanduser()
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def merge_into(target: Path, config_text: str, *, set_current: bool) -> str:
    """Merge `config_text`'s cluster, user and context into the kubeconfig file `target` (created if missing),
    keeping every other entry; with `set_current`, its context becomes current-context (as eksctl does).
    The file is private (0600) from its creation on. Returns the context's name."""
    import yaml

    from kubeaws import pki

    existing = target.read_text() if target.exists() else None
    merged = pki.merge_kubeconfig(existing, config_text)
    context = str((yaml.safe_load(config_text) or {}).get("current-context") or "")
    if set_current and context:
        doc = yaml.safe_load(merged)
        doc["current-context"] = context
        merged = yaml.safe_dump(doc, sort_keys=False)
    write_private(target, merged)
    return context


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (0600), never briefly readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through O_CREAT


def write_kubeconfig(out: Out, spec: ClusterSpec, ctx: AwsContext, path: Path | None) -> dict[str, str]:
    """`kubeaws apply --write-kubeconfig [--kubeconfig PATH]`: the cluster's admin context merged into the
    kubeconfig file (`kubeconfig_target`) and made current, every other entry kept, the file 0600 (what
    `eksctl create cluster` does). Returns what the JSON document says of it."""
    from kubeaws.access import admin_kubeconfig

    config = admin_kubeconfig(spec, ctx)
    target = kubeconfig_target(path)
    context = merge_into(target, config.text, set_current=True)
    out.info(f"kubeconfig: context {context!r} written to {target}; it is the current context")
    if config.hint:
        out.info(config.hint)
    return {"file": str(target), "context": context, "server": config.server}


def kubeconfig(file: SpecFile,
               merge: Annotated[bool, typer.Option("--merge", help="Add a context to ~/.kube/config ($KUBECONFIG) "
                                                   "without touching the others.")] = False,
               output_file: Annotated[Path | None, typer.Option("--output-file", help="Write here instead of "
                                                                "stdout.")] = None,
               lifetime: Annotated[float, typer.Option("--lifetime-hours", min=0.1, max=8760.0,
                                                       help="Validity of the client certificate "
                                                       "(kubeadm; EKS tokens are short-lived).")] = 24.0,
               profile: ProfileOpt = None, region: RegionOpt = None, local: LocalOpt = False,
               tunnel: Annotated[bool, typer.Option("--tunnel", help="Reach the API through the bastion tunnel: "
                                                    "server https://127.0.0.1:PORT, tls-server-name the endpoint, "
                                                    "context <cluster>-tunnel (open it with `kubeaws tunnel -f SPEC "
                                                    "--port PORT`).")] = False,
               port: Annotated[int | None, typer.Option("--port", min=1, max=65535, show_default=False,
                                                        help="With --tunnel: the tunnel's local port (default "
                                                        "16443).")] = None,
               output_format: OutputOpt = OutputFormat.text) -> None:
    """An admin kubeconfig for the cluster (kubeadm: client certificate signed by the cluster CA; EKS: a user
    running `kubeaws token`); with --tunnel, one that goes through `kubeaws tunnel`. Printed as YAML (text,
    yaml) or JSON; with --merge or --output-file, json/yaml say where it went."""
    opts = ClusterOptions(file, output_format, profile, region, local)
    out = Out(output_format.value)

    def body() -> int:
        import yaml

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
        written: Path | None = None
        if merge:
            written = kubeconfig_target()
            context = merge_into(written, result.text, set_current=False)
            out.info(f"context {context!r} merged into {written}")
        elif output_file:
            written = output_file
            write_private(output_file, result.text)
            out.info(f"wrote {output_file}")
        elif output_format == OutputFormat.json:
            out.emit(yaml.safe_load(result.text))
        else:
            Out("text").text(result.text)  # YAML already: printed as is (with its layout), for text and yaml
        if written is not None and out.json:
            out.emit({"cluster": spec.metadata.name, "kubeconfig": str(written), "server": result.server,
                      "context": str((yaml.safe_load(result.text) or {}).get("current-context") or "")})
        if result.hint:
            out.info(result.hint)
        return 0

    run(out, body)
