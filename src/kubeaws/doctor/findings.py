"""What `kubeaws doctor` reports: `Finding` (one problem or remark, with a stable check id, the resource it is
about and how to fix it) and `Report` (the findings of a run, their summary and the JSON shape).

Built by the doctor checks (doctor.static, doctor.network); read by the CLI (kubeaws.cli.doctor) and tests.
Pure data, no kubeaws imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One result of a check. `check` is a stable id ("pod-network.missing-flow"), `resource` what it is about
    (a graph key such as "SecurityGroup/nodes", or a spec path such as "spec.nodeGroups[0]"), `hint` the fix."""

    severity: Severity
    check: str
    message: str
    resource: str = ""
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Report:
    """The findings of one doctor run, errors first (stable order within a severity)."""

    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity))

    def summary(self) -> dict[str, int]:
        """{"error": N, "warning": N, "info": N}."""
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def by_severity(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def checks(self) -> set[str]:
        """The ids of the checks that reported something."""
        return {f.check for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """`{"findings": [...], "summary": {...}}` (the `--output json` document)."""
        return {"findings": [f.to_dict() for f in self.findings], "summary": self.summary()}
