"""kubeaws: one YAML file to a Kubernetes cluster on AWS (kubeadm on EC2 or EKS), with a plan first.

The public API is re-exported here lazily (importing kubeaws stays cheap):
`load_spec`, `build` (the resource graph of a spec), `connect`, `plan`, `plan_state`, `save_plan` and
`check_plan` (reviewed plans), `apply`, `delete`, `status`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_API = ("load_spec", "build", "connect", "plan", "plan_state", "save_plan", "check_plan", "apply", "delete",
        "status")
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from kubeaws import api

        return getattr(api, name)
    raise AttributeError(f"module 'kubeaws' has no attribute {name!r}")
