"""The local AWS emulator (moto in server mode) behind `kubeaws --local` and `kubeaws local ...`."""

from __future__ import annotations

from kubeaws.local.emulator import ensure_running, local_environment, status, stop

__all__ = ["ensure_running", "local_environment", "status", "stop"]
