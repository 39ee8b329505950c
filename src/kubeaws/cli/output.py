"""Everything the CLI prints: text or JSON mode, errors, live progress of apply/delete, summaries and the
status tables.

Text goes to stdout, diagnostics to stderr; with `--output json` or `yaml` stdout carries exactly one document
(errors included, as {"error": ...}), the same data in either format. Piped, rich output is not cut to a
terminal width: tables are as wide as their rows. Called by the kubeaws.cli command modules. The engine types
are imported for typing only, so importing this module does not import boto3.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from kubeaws.engine.types import ApplyResult, Event, StatusReport

STATE_STYLE = {"started": "yellow", "running": "yellow", "done": "green", "failed": "bold red",
               "skipped": "magenta"}
DONE_LIST_MAX = 20  # longer lists of done resources are summarised per kind
PAST = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}


#: The width rich lays tables out in when stdout is not a terminal: wide enough that no row is cut or
#: wrapped (a table is only as wide as its content: `expand` stays off).
PIPE_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """A rich console for stdout (or stderr): the terminal's width on a terminal, no width limit piped."""
    stream = sys.stderr if stderr else sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return Console(stderr=stderr, soft_wrap=True, highlight=False, width=None if tty else PIPE_WIDTH)


class Out:
    """The CLI's output channel for one command. `json` is True for both structured formats (json and
    yaml): the command then prints one document (`emit`) and no text."""

    def __init__(self, fmt: str = "text") -> None:
        self.format = fmt
        self.json = fmt in ("json", "yaml")
        self.stdout = console()
        self.stderr = console(stderr=True)

    @property
    def interactive(self) -> bool:
        """Whether stdout is a terminal (live progress, colours)."""
        return self.stdout.is_terminal

    def text(self, text: str) -> None:
        """Plain text on stdout as is (no markup, no wrapping); nothing in JSON mode."""
        if not self.json:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()

    def print(self, markup: str) -> None:
        """Rich markup on stdout; nothing in JSON mode."""
        if not self.json:
            self.stdout.print(markup)

    def info(self, markup: str) -> None:
        """A note on stderr (kept out of stdout so that pipes get only the result)."""
        self.stderr.print(markup)

    def emit(self, data: Any) -> None:
        """The command's one document on stdout, in the chosen format (YAML when asked, JSON otherwise)."""
        text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
        if self.format == "yaml":
            import yaml

            text = yaml.safe_dump(json.loads(text), sort_keys=False, default_flow_style=False, allow_unicode=True)
        sys.stdout.write(text)
        sys.stdout.flush()

    emit_json = emit  # the name the commands used before YAML existed

    def error(self, message: str, *, hint: str = "", kind: str = "error") -> None:
        """An error: {"error": ...} on stdout in JSON mode, `error: ...` on stderr otherwise."""
        if self.json:
            data: dict[str, Any] = {"error": message, "type": kind}
            if hint:
                data["hint"] = hint
            self.emit(data)
            return
        self.stderr.print(Text("error: ", style="bold red") + Text(message))
        if hint:
            self.stderr.print(Text("  " + hint))


# -- live progress --------------------------------------------------------------------------------------
@dataclass
class _Row:
    key: str
    action: str
    state: str = "started"
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    id: str | None = None
    error: str | None = None


class Progress:
    """Receives engine events (from worker threads) and shows them: a live table on a terminal, one plain
    line per event otherwise, nothing in JSON mode. Use as a context manager around apply/delete."""

    def __init__(self, out: Out, verb: str) -> None:
        self.out = out
        self.verb = verb
        self.live_mode = out.interactive and not out.json
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.live_mode:
            self._live = Live(self, console=self.out.stdout, refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            row = self._rows.get(event.key)
            if row is None or event.state == "started":
                row = _Row(event.key, event.action)
                self._rows[event.key] = row
            row.action = event.action
            row.state = event.state
            if event.state != "started":
                row.seconds = event.seconds or (time.monotonic() - row.started)
            row.id = event.id or row.id
            row.error = event.error
            if not self.live_mode and not self.out.json:
                self._line(row)

    def _line(self, row: _Row) -> None:
        elapsed = time.monotonic() - self._start
        detail = f" {row.id}" if row.id and row.state == "done" else ""
        if row.seconds is not None and row.state != "started":
            detail += f" ({row.seconds:.1f}s)"
        if row.error:
            detail += f": {row.error}"
        sys.stdout.write(f"[{elapsed:6.1f}s] {row.action:<7} {row.key} {row.state}{detail}\n")
        sys.stdout.flush()

    def __rich__(self) -> Table:
        """The live table (called by rich's refresh thread)."""
        with self._lock:
            rows = list(self._rows.values())
        now = time.monotonic()
        height = max(self.out.stdout.size.height - 6, 5)
        active = [r for r in rows if r.state in ("started", "failed")]
        finished = [r for r in rows if r.state not in ("started", "failed")]
        room = max(height - len(active), 0)
        hidden = max(len(finished) - room, 0)
        shown = [r for r in rows if r in active or r in finished[hidden:]]
        table = Table(title=f"{self.verb} ({now - self._start:.0f}s)", title_justify="left", expand=False)
        table.add_column("resource")
        table.add_column("action")
        table.add_column("state")
        table.add_column("seconds", justify="right")
        table.add_column("id / error")
        for r in shown:
            secs = r.seconds if r.seconds is not None else now - r.started
            state = "running" if r.state == "started" else r.state
            table.add_row(r.key, r.action, Text(state, style=STATE_STYLE.get(state, "")), f"{secs:.1f}",
                          Text(r.error or r.id or "", style="red" if r.error else "dim"))
        if hidden:
            table.caption = f"{hidden} more done"
        return table


# -- results --------------------------------------------------------------------------------------------
def summary_counts(result: ApplyResult) -> dict[str, int]:
    counts = {past: 0 for past in PAST.values()}
    for event in result.done:
        if event.action in PAST:
            counts[PAST[event.action]] += 1
    return counts


def summary_line(result: ApplyResult) -> str:
    counts = ", ".join(f"{n} {what}" for what, n in summary_counts(result).items()
                       if n or result.operation == "apply" or what == "deleted")
    head = "Apply" if result.operation == "apply" else "Delete"
    return f"{head} complete: {counts} in {result.seconds:.1f}s."


def report_result(out: Out, result: ApplyResult, finish_command: str) -> None:
    """Text report of an apply/delete: the summary, or on failure what was done, what failed and why, what
    was not attempted, and the command that finishes the job."""
    if result.ok:
        out.print(f"[green]{escape(summary_line(result))}[/green]")
        return
    head = "Apply" if result.operation == "apply" else "Delete"
    out.print(f"[bold red]{head} incomplete[/bold red] after {result.seconds:.1f}s: "
              f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} not attempted.")
    if len(result.done) > DONE_LIST_MAX:
        by_kind = Counter(f"{e.action} {e.kind}" for e in result.done)
        out.print(f"Done ({len(result.done)}): " + ", ".join(f"{escape(k)} x{n}" for k, n in sorted(by_kind.items())))
    elif result.done:
        out.print("Done:")
        for e in result.done:
            out.print(f"  [green]✓[/green] {e.action:<7} {escape(e.key)}" + (f" ({escape(e.id)})" if e.id else ""))
    out.print("Failed:")
    for e in result.failed:
        out.print(f"  [red]✗[/red] {e.action:<7} {escape(e.key)}: {escape(e.error or 'unknown error')}")
    if result.skipped:
        out.print("Not attempted (depend on a failed resource):")
        for e in result.skipped:
            out.print(f"  - {e.action:<7} {escape(e.key)}" + (f": {escape(e.error)}" if e.error else ""))
    out.print("Every step is idempotent: fix the cause above, then finish the job with:")
    out.print(f"  [bold]{escape(finish_command)}[/bold]")


# -- status ---------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


#: Attributes worth a status column, in this order; others (ARNs, owner IDs...) are in the JSON output.
PREFERRED = ("az", "cidr", "instanceType", "privateIp", "publicIp", "vpcId", "subnetId")
HIDDEN = frozenset({"arn", "ownerId", "associationId", "networkInterfaceId", "launchTime", "failure"})


def _attr_columns(items: Iterable[dict[str, Any]]) -> list[str]:
    """Attribute columns with at least one non-empty scalar value: preferred ones first, at most four."""
    seen: list[str] = []
    for attrs in items:
        for key, value in attrs.items():
            if key not in seen and key not in HIDDEN and value not in (None, "", [], {}) and \
                    not isinstance(value, dict):
                seen.append(key)
    ordered = [k for k in PREFERRED if k in seen] + [k for k in seen if k not in PREFERRED]
    return ordered[:4]


def _tables(out: Out, data: dict[str, list[dict[str, Any]]], title_suffix: str = "") -> None:
    """One table per kind: name, id, state, then up to four attribute columns."""
    for kind, items in data.items():
        extra = _attr_columns({k: v for k, v in item.items() if k not in ("name", "id", "state")}
                              for item in items)
        table = Table(title=f"{kind} ({len(items)}){title_suffix}", title_justify="left")
        for column in ("name", "id", "state", *extra):
            table.add_column(column, no_wrap=column in ("name", "id"))
        for item in items:
            table.add_row(*(_cell(item.get(c)) for c in ("name", "id", "state", *extra)))
        if not out.json:
            out.stdout.print(table)


def report_status(out: Out, report: StatusReport, finish_command: str) -> None:
    """One table per kind (name, id, state, attributes), then what the cluster's controllers made (deleted
    with the cluster), then whether the cluster matches the spec."""
    data = report.to_dict()
    if not data["resources"]:
        out.print(f'No resources found for cluster "{escape(report.cluster)}".')
    _tables(out, data["resources"])
    if report.controller_made:
        from kubeaws.engine.render import controller_made_summary

        out.print(f"Made by the cluster's controllers: {controller_made_summary(report.controller_made)} "
                  "(not in the spec; `kubeaws delete` deletes them with the cluster):")
        _tables(out, data["controllerMade"], ", made by the cluster's controllers")
    if report.in_sync:
        out.print("[green]in sync[/green]: the cluster matches the spec.")
    else:
        out.print(f"[yellow]{report.pending_changes} pending changes[/yellow] (run {escape(finish_command)})")


def report_delete_preview(out: Out, report: StatusReport) -> int:
    """What delete will remove (brought resources only lose their tag), then what the cluster's controllers
    made that goes with it; returns how many resources."""
    tag = f"kubernetes.io/cluster/{report.cluster}"
    resources = report.resources
    if resources:
        out.print(f'Will delete {len(resources)} resources of cluster "{escape(report.cluster)}":')
    for o in resources:
        name = o.logical_key or f"{o.kind}/{o.id}"
        note = "  # brought: only untagged, never deleted" if o.tags.get(tag) == "shared" else ""
        out.print(f"  [red]-[/red] {escape(name)} ({escape(o.id)}){note}")
    if report.controller_made:
        from kubeaws.engine.render import controller_made_summary

        out.print(f"Will also delete {controller_made_summary(report.controller_made)} the cluster's "
                  "controllers created:")
        for o in report.controller_made:
            what = o.attrs.get("service") or o.attrs.get("claim")
            note = f"  # {what}" if what else ""
            out.print(f"  [red]-[/red] {escape(o.kind)}/{escape(str(o.attrs.get('name') or o.id))} "
                      f"({escape(o.id)}){escape(note)}")
    return len(resources) + len(report.controller_made)


def local_status_text(out: Out, info: dict[str, Any]) -> None:
    if not info.get("running"):
        stale = " (stale state removed on next start)" if info.get("stale") else ""
        out.print(f"local AWS emulator: [yellow]not running[/yellow]{stale}; start it with `kubeaws local start`")
        return
    out.print(f"local AWS emulator: [green]running[/green] at {info['url']} (pid {info['pid']}, "
              f"up {info['uptime']:.0f}s)")
    out.print(f"  log: {escape(str(info['log']))}")
    resources: dict[str, int] = info.get("resources") or {}
    if resources:
        table = Table(title="resources held by moto (including its defaults)", title_justify="left")
        table.add_column("service.model")
        table.add_column("count", justify="right")
        for name, count in resources.items():
            table.add_row(name, str(count))
        out.stdout.print(table)
