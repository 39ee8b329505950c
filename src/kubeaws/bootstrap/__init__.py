"""Boot-time rendering of a self-managed (kubeadm) cluster: EC2 user data (cloud-config), the bash boot
scripts and the kubeadm configuration files.

Pure functions (no AWS call, no I/O besides the package templates). Called by the model builders (launch
templates' user data) and by `kubeaws render -o DIR` (`artifacts`). See docs/kubeadm.md for the contract
(state bucket layout, join flow, control-plane member identity, etcd volumes, endpoint).
"""

from __future__ import annotations

from kubeaws.bootstrap.kubeadm import Role, api_version, render_kubeadm_configs
from kubeaws.bootstrap.userdata import (
    USER_DATA_LIMIT,
    artifacts,
    bucket_objects,
    render_scripts,
    render_user_data,
)

__all__ = [
    "USER_DATA_LIMIT",
    "Role",
    "api_version",
    "artifacts",
    "bucket_objects",
    "render_kubeadm_configs",
    "render_scripts",
    "render_user_data",
]
