"""`kubeaws doctor`: finds, in milliseconds and before any deploy, the mistakes that break Kubernetes clusters
on AWS (docs: DESIGN.md "The problems it exists to remove"). Static checks only for now (doctor.static over
the spec and the desired graph, no AWS call).

Called by the CLI (kubeaws.cli.doctor) and tests.
"""

from __future__ import annotations

from kubeaws.doctor.findings import Finding, Report
from kubeaws.doctor.network import MatrixRow, matrix
from kubeaws.doctor.static import CHECKS, check_spec

__all__ = ["CHECKS", "Finding", "MatrixRow", "Report", "check_spec", "matrix"]
