"""Self-managed (kubeadm) cluster builder: IAM roles and instance profiles, the state bucket with the PKI
and the cluster description nodes read at boot, the API endpoint, the control plane (one Auto Scaling group
and one etcd volume per member) and the self-managed node groups, wired to the rendered user data; every
addon's objects (model.addon_objects), applied through the API once the control plane's groups exist.

Called by `model.build` for `mode: kubeadm`. Pure.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from kubeaws import addons, bootstrap
from kubeaws.model.addon_objects import declare_addon
from kubeaws.model.common import Builder
from kubeaws.model.control_plane import build_control_plane
from kubeaws.model.endpoint import API_PORT, build_endpoint
from kubeaws.model.network import NetworkRefs
from kubeaws.model.nodegroups import build_node_groups
from kubeaws.model.state import build_state_and_iam, state_object
from kubeaws.resources.base import Computed, Ref
from kubeaws.spec.models import ClusterSpec

CLUSTER_JSON = "cluster/cluster.json"


def cluster_json(spec: ClusterSpec, endpoint: str, ca_cert_hash: str) -> str:
    """What every node reads first (`cluster/cluster.json`): where the API is and how to trust it."""
    body = spec.spec
    return json.dumps({
        "clusterName": spec.metadata.name,
        "endpoint": endpoint,
        "port": API_PORT,
        "caCertHash": ca_cert_hash,
        "kubernetesVersion": body.kubernetes_version,
        "podCIDR": body.network.pod_cidr,
        "serviceCIDR": body.network.service_cidr,
        "members": body.control_plane.count,
    }, indent=2, sort_keys=True) + "\n"


def _user_data(spec: ClusterSpec, role: str, bucket: Any, group: str | None = None) -> Computed:
    return Computed(bootstrap.render_user_data, {"spec": spec, "role": role, "bucket": bucket, "group": group},
                    f"{role} user data" + (f" ({group})" if group else ""))


def build_kubeadm(b: Builder, net: NetworkRefs, groups: dict[str, Ref]) -> None:
    spec = b.spec
    iam, state = build_state_and_iam(b)
    with b.section("access.apiEndpoint"):
        endpoint = build_endpoint(b, net, groups)
    info = state_object(b, CLUSTER_JSON, Computed(cluster_json, {
        "spec": spec, "endpoint": endpoint.host, "ca_cert_hash": Ref(state.pki.kind, state.pki.name,
                                                                     "ca_cert_hash")}, "cluster.json"))
    ready = [info.key, state.pki.key]
    for key, content in sorted(bootstrap.bucket_objects(spec).items()):
        ready.append(state_object(b, key, content).key)

    with b.section("controlPlane"):
        cp = build_control_plane(b, net, groups, endpoint, instance_profile=iam.control_plane_profile,
                                 user_data=_user_data(spec, "control-plane", state.bucket))
    nodes = build_node_groups(b, net, groups, instance_profile=iam.node_profile,
                              user_data_for=lambda name: _user_data(spec, "node", state.bucket, name))
    # Instances must not boot before what they read at boot is in the bucket.
    for ref in [*cp.auto_scaling_groups, *(n.auto_scaling_group for n in nodes.values())]:
        desired = b.graph[ref.key]
        b.graph.replace(replace(desired, depends_on=tuple(sorted({*desired.depends_on, *ready}))))
    control_plane = tuple(ref.key for ref in cp.auto_scaling_groups)
    for addon in addons.enabled(spec):
        declare_addon(b, spec.metadata.name, addon, after=control_plane)
