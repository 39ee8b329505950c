"""Pods per node with the AWS VPC CNI, for the model and doctor: a re-export of `spec.maxpods` (where the
formula and the group helpers live, so that the kubeadm node bootstrap, which may not import the model, can
read them too), with the bundled table's names `table`, `limits` and `EniLimits` that this module always gave.

Called by the EKS model (the `maxPods` handed to `bootstrap.eks.render_nodeadm_user_data`), `access` (render)
and doctor.
"""

from __future__ import annotations

from kubeaws.spec.instance_types import InstanceTypeInfo, UnknownInstanceType, table
from kubeaws.spec.instance_types import info as limits
from kubeaws.spec.maxpods import (
    LARGE_VCPUS,
    PREFIX_CAP,
    PREFIX_CAP_LARGE,
    PREFIX_SIZE,
    check_max_pods,
    effective_max_pods,
    group_max_pods,
    kubelet_max_pods,
    max_pods,
    max_pods_from,
    max_pods_of,
)

#: The table's entries (network limits, vCPUs, memory), under the name this module always gave them.
EniLimits = InstanceTypeInfo
__all__ = ["LARGE_VCPUS", "PREFIX_CAP", "PREFIX_CAP_LARGE", "PREFIX_SIZE", "EniLimits", "UnknownInstanceType",
           "check_max_pods", "effective_max_pods", "group_max_pods", "kubelet_max_pods", "limits", "max_pods",
           "max_pods_from", "max_pods_of", "table"]
