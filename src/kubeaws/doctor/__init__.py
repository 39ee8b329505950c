"""`kubeaws doctor`: finds, in milliseconds and before any deploy, the mistakes that break Kubernetes clusters
on AWS (docs: DESIGN.md "The problems it exists to remove"). Static checks: doctor.static over
the spec and the desired graph (no AWS call; doctor.brought reads brought resources with read-only
describes); live checks of a deployed cluster (`kubeaws doctor --live`):
doctor.live (imported on demand: it needs botocore), with doctor.live_resources and doctor.live_k8s.
Every check id is listed in docs/doctor.md.

Called by the CLI (kubeaws.cli.doctor) and tests.
"""

from __future__ import annotations

from kubeaws.doctor.findings import Finding, Report
from kubeaws.doctor.network import MatrixRow, matrix
from kubeaws.doctor.static import CHECKS, check_spec

__all__ = ["CHECKS", "Finding", "MatrixRow", "Report", "check_spec", "matrix"]
