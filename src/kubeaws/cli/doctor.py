"""CLI command `kubeaws doctor -f SPEC [--live [--wait DURATION]] [--output text|json]`: the static doctor
checks (kubeaws.doctor: no AWS call and no boto3 import unless the spec brings a VPC, subnets or security
groups, which are read with read-only describes) and, with `--live`, the read-only inspection of the
deployed cluster (kubeaws.doctor.live: AWS describes with --profile/--region/--local like the other cluster
commands, and the Kubernetes API when reachable). `--wait 10m` re-runs the live checks every WAIT_INTERVAL
seconds until they find no error or the time is up (progress on stderr in text mode; JSON prints the final
report only). Text: the findings grouped by severity, then the reachability matrix between roles (source x
target x flow, ✓/✗). JSON: exactly `{"findings": [...], "summary": {...}}`.

Exit codes: 0 no error finding, 1 at least one, 2 bad input (the spec does not load or the model cannot be
built; a bad --wait value).
Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kubeaws.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    BadInput,
    ClusterOptions,
    OutputFormat,
    OutputOpt,
    SpecFile,
    connect,
    load,
    run,
)
from kubeaws.cli.output import Out
from kubeaws.errors import KubeawsError, SpecError

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.doctor import Finding, MatrixRow, Report
    from kubeaws.model.graph import Graph
    from kubeaws.spec.models import ClusterSpec

LiveOpt = Annotated[bool, typer.Option("--live", help="Also inspect the deployed cluster (read-only AWS calls and "
                                                      "the Kubernetes API).")]
WaitOpt = Annotated[str | None, typer.Option("--wait", metavar="DURATION", show_default=False,
                                             help="With --live: re-check until no error is found, for at most "
                                                  "DURATION (e.g. 10m, 90s, 1h).")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile for --live.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region for --live (overrides spec.region).")]
LocalOpt = Annotated[bool, typer.Option("--local", help="--live against the local AWS emulator.")]
#: Seconds between two runs of the live checks with --wait.
WAIT_INTERVAL = 10.0
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
TITLE = {"error": "Errors", "warning": "Warnings", "info": "Notes"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def parse_duration(text: str) -> float:
    """Seconds of "90s", "10m", "1h", "1m30s" or a plain number of seconds; BadInput (exit 2) otherwise."""
    value = text.strip().lower()
    if value.isdigit():
        return float(value)
    match = DURATION.match(value)
    if not value or match is None:
        raise BadInput(f"--wait {text!r} is not a duration: use e.g. 90s, 10m, 1h or 1m30s")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def doctor(file: SpecFile, output_format: OutputOpt = OutputFormat.text, live: LiveOpt = False,
           wait: WaitOpt = None, profile: ProfileOpt = None, region: RegionOpt = None,
           local: LocalOpt = False,
           tunnel: Annotated[bool, typer.Option("--tunnel", help="With --live: reach a private API through the "
                                                "bastion (SSH; as `kubeaws tunnel`).")] = False,
           ssh_key: Annotated[Path | None, typer.Option("--ssh-key", show_default=False, help="With --tunnel: "
                                                        "the bastion key pair's private key (default: the SSH "
                                                        "agent's keys, then ~/.ssh/<access.sshKeyName>).")] = None
           ) -> None:
    """Check the spec for the mistakes that break clusters (security-group flows, IP capacity, node join,
    tags, exposure, storage, mirrors) in well under a second, before any deploy; AWS is only asked to describe
    what the spec brings (VPC, subnets, security groups). With --live, also inspect the deployed cluster:
    nodes registered and Ready, kube-system pods, leaked ENIs, free subnet addresses, instance type
    offerings, peered CIDRs, tags and exposure of the live resources."""
    out = Out(output_format.value)
    opts = ClusterOptions(file, output_format, profile, region, local)

    def body() -> int:
        from kubeaws.doctor import check_spec, matrix
        from kubeaws.doctor.brought import brought_facts
        from kubeaws.engine.instance_types import resolved, unresolved
        from kubeaws.model import build

        seconds = parse_duration(wait) if wait is not None else None
        if seconds is not None and not live:
            raise BadInput("--wait re-runs the live checks: add --live")
        if (tunnel or ssh_key) and not live:
            raise BadInput("--tunnel and --ssh-key are for the live checks: add --live")
        spec = load(file)
        # One AWS context, made only when needed: for the read-only describes of what the spec brings (VPC,
        # subnets, security groups, instance types newer than the bundled table) and for --live.
        aws = functools.cache(lambda: connect(spec, opts, out))
        if unresolved(spec):
            spec = resolved(spec, aws())
        graph: Graph | None
        try:
            graph = build(spec)
        except SpecError:
            raise  # a bad spec (exit 2)
        except (KubeawsError, ValueError):
            graph = None  # the model refuses the spec for another reason: check_spec reports why
        facts = brought_facts(spec, aws)
        report = check_spec(spec, graph, facts)
        if live:
            report = live_report(out, aws(), spec, graph, report.findings, seconds, tunnel or ssh_key is not None,
                                 ssh_key)
        if out.json:
            out.emit(report.to_dict())
        else:
            report_text(out, report, matrix(spec, graph, facts) if graph is not None else [])
        return EXIT_FAILED if report.has_errors else EXIT_OK

    run(out, body)


def waitable_warnings(spec: ClusterSpec, tunnel: bool = False) -> frozenset[str]:
    """Warnings that --wait waits out too: an API that cannot be reached yet, when it is one this machine
    reaches once the cluster is up (a public endpoint; EKS's is public by default). A private endpoint stays
    out of reach without a tunnel (`--tunnel`): waiting could not change it."""
    body = spec.spec
    public = tunnel or body.mode == "eks" or body.access.api_endpoint == "public"
    return frozenset({"live.api-unreachable"}) if public else frozenset()


def live_report(out: Out, ctx: AwsContext, spec: ClusterSpec, graph: Graph | None, static: list[Finding],
                wait: float | None, tunnel: bool = False, ssh_key: Path | None = None) -> Report:
    """The static findings plus those of the live checks; with `wait`, the live checks are re-run every
    WAIT_INTERVAL seconds until they report no error (nor a `waitable_warnings` one: an API not up yet) or
    `wait` seconds have passed (static errors do not keep it waiting: they do not change by themselves)."""
    from kubeaws.doctor import Report
    from kubeaws.doctor.live import check_live, combine
    from kubeaws.model.graph import Graph

    deadline = time.monotonic() + (wait or 0.0)
    the_graph = graph if graph is not None else Graph(spec.metadata.name, spec.spec.mode)
    waitable = waitable_warnings(spec, tunnel)
    while True:
        found = check_live(spec, the_graph, ctx, tunnel=tunnel, ssh_key=ssh_key, probe=True)
        errors = sorted({f.check for f in found if f.severity == "error" or (wait is not None
                                                                              and f.check in waitable)})
        left = deadline - time.monotonic()
        if not errors or wait is None or left <= 0:
            if wait is not None and not out.json:
                out.info("[green]live checks pass[/green]" if not errors else
                         f"[red]--wait {int(wait)}s is over with {len(errors)} kind(s) of live error left[/red]")
            return Report(combine(static, found))
        if not out.json:
            count = sum(1 for f in found if f.severity == "error")
            count += sum(1 for f in found if f.check in waitable)
            out.info(f"[dim]waiting: {count} live error(s) ({', '.join(errors)}); re-checking in "
                     f"{min(WAIT_INTERVAL, left):.0f}s, {left:.0f}s left[/dim]")
        time.sleep(max(0.0, min(WAIT_INTERVAL, left)))


def preflight(out: Out, spec: Any, force: bool, ctx: Any) -> Graph:
    """The doctor checks that `plan` and `apply` run first (the static ones, and the rules and free addresses
    of brought resources, read through `ctx`): error findings stop the command (exit 1) unless `force`, in
    which case they are shown and the command goes on. Returns the spec's graph, for the command to plan
    with (built once); a spec whose graph cannot be built raises as `plan` would."""
    from kubeaws.doctor import check_spec
    from kubeaws.doctor.brought import brought_facts
    from kubeaws.engine.instance_types import resolved
    from kubeaws.model import build

    spec = resolved(spec, ctx)  # types newer than the bundled table: from AWS (kept for the plan that follows)
    graph = build(spec)
    report = check_spec(spec, graph, brought_facts(spec, ctx))
    errors = report.by_severity("error")
    if not errors:
        return graph
    shown = Out("text")
    if out.json:
        shown.stdout = shown.stderr  # keep stdout for the command's one JSON document
    for f in errors:
        shown.print(f"[red]error[/red] {escape(f.check)}: {escape(f.message)}")
        if f.hint:
            shown.print(f"      fix: {escape(f.hint)}")
    if force:
        shown.print(f"[yellow]--force: going on despite {len(errors)} doctor error(s)[/yellow]")
        return graph
    raise KubeawsError(f"kubeaws doctor found {len(errors)} error(s) in the spec (listed above): fix them, or "
                       "pass --force to go on anyway")


def report_text(out: Out, report: Report, rows: list[MatrixRow]) -> None:
    """Findings grouped by severity (errors first), the summary line, then the reachability matrix."""
    for severity in ("error", "warning", "info"):
        found = report.by_severity(severity)
        if not found:
            continue
        out.print(f"[{STYLE[severity]}]{TITLE[severity]} ({len(found)})[/{STYLE[severity]}]")
        for f in found:
            where = f" [dim]({escape(f.resource)})[/dim]" if f.resource else ""
            out.print(f"  [{STYLE[severity]}]{severity}[/{STYLE[severity]}] {escape(f.check)}: "
                      f"{escape(f.message)}{where}")
            if f.hint:
                out.print(f"      fix: {escape(f.hint)}")
    counts = report.summary()
    colour = "red" if report.has_errors else "green"
    out.print(f"[{colour}]{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} "
              f"note(s)[/{colour}]")
    if not rows:
        return
    table = Table(title="Reachability between roles (security-group rules)", title_justify="left")
    for column in ("source", "target", "flow", "allowed"):
        table.add_column(column)
    for row in rows:
        mark = "[green]✓[/green]" if row.ok else "[bold red]✗[/bold red]"
        table.add_row(escape(row.source), escape(row.target), escape(row.purpose), mark)
    if not out.json:
        out.stdout.print(table)
