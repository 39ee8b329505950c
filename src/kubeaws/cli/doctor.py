"""CLI command `kubeaws doctor -f SPEC [--output text|json]`: the static doctor checks (kubeaws.doctor), no
AWS call. Text: the findings grouped by severity, then the reachability matrix between roles (source x
target x flow, ✓/✗). JSON: exactly `{"findings": [...], "summary": {...}}`.

Exit codes: 0 no error finding, 1 at least one, 2 a bad spec (it does not load or the model cannot be built).
Registered on the main typer app with `register(app)` by kubeaws.cli.main.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kubeaws.cli.common import EXIT_FAILED, EXIT_OK, OutputFormat, load, run
from kubeaws.cli.output import Out
from kubeaws.errors import KubeawsError, SpecError

if TYPE_CHECKING:
    from kubeaws.doctor import MatrixRow, Report

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="The cluster spec (YAML).", show_default=False)]
OutputOpt = Annotated[OutputFormat, typer.Option("--output", help="Output format.")]
STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
TITLE = {"error": "Errors", "warning": "Warnings", "info": "Notes"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(file: SpecFile, output_format: OutputOpt = OutputFormat.text) -> None:
    """Check the spec for the mistakes that break clusters (security-group flows, IP capacity, node join,
    tags, exposure, storage, mirrors) in well under a second, before any deploy. No AWS call."""
    out = Out(output_format.value)

    def body() -> int:
        from kubeaws.doctor import check_spec, matrix
        from kubeaws.model import build
        from kubeaws.model.graph import Graph

        spec = load(file)
        graph: Graph | None
        try:
            graph = build(spec)
        except SpecError:
            raise  # a bad spec (exit 2)
        except (KubeawsError, ValueError):
            graph = None  # e.g. an instance type outside the ENI table: check_spec reports why
        report = check_spec(spec, graph)
        if out.json:
            out.emit_json(report.to_dict())
        else:
            report_text(out, report, matrix(spec, graph) if graph is not None else [])
        return EXIT_FAILED if report.has_errors else EXIT_OK

    run(out, body)


def preflight(out: Out, spec: Any, force: bool) -> None:
    """The static doctor checks that `plan` and `apply` run first: error findings stop the command (exit 1)
    unless `force`, in which case they are shown and the command goes on."""
    from kubeaws.doctor import check_spec

    report = check_spec(spec)
    errors = report.by_severity("error")
    if not errors:
        return
    shown = Out("text")
    if out.json:
        shown.stdout = shown.stderr  # keep stdout for the command's one JSON document
    for f in errors:
        shown.print(f"[red]error[/red] {escape(f.check)}: {escape(f.message)}")
        if f.hint:
            shown.print(f"      fix: {escape(f.hint)}")
    if force:
        shown.print(f"[yellow]--force: going on despite {len(errors)} doctor error(s)[/yellow]")
        return
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
