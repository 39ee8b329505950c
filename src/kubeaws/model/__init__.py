"""Model builders: pure functions from a ClusterSpec to the graph of desired AWS resources.

`build(spec, instance_types)` is called by the public API (kubeaws.api) before planning; no AWS calls happen
here. The instance-type facts come in as data (`spec.instance_types.InstanceTypes`: kubeaws.api brings the
table plus AWS's DescribeInstanceTypes answer); without them, those the spec carries (the bundled table unless
it was resolved). The spec is resolved against them first (`spec.resolve`): an unknown type is a SpecError
naming its field and line before any resource is modelled.
"""

from __future__ import annotations

from kubeaws.model.bastion import build_bastion
from kubeaws.model.common import Builder
from kubeaws.model.eks import build_eks
from kubeaws.model.graph import Graph
from kubeaws.model.kubeadm import build_kubeadm
from kubeaws.model.network import build_network
from kubeaws.model.security import build_security
from kubeaws.spec.instance_types import InstanceTypes
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.resolve import resolve


def build(spec: ClusterSpec, instance_types: InstanceTypes | None = None, *,
          addons_minor: str | None = None, kubernetes_objects: bool = True) -> Graph:
    """Every desired resource of the cluster, with explicit references between them; the limits of its
    instance types from `instance_types` (default: the facts the spec carries). `addons_minor`: render the
    addons whose images follow the Kubernetes minor for that minor instead of the spec's (kubeaws.api, while
    the API servers still run it during an upgrade). `kubernetes_objects` False: the AWS side only (no
    KubernetesObject; model.documents)."""
    spec = resolve(spec, instance_types or spec.instance_type_facts)
    b = Builder(spec=spec, graph=Graph(spec.metadata.name, spec.spec.mode), addons_minor=addons_minor,
                kubernetes_objects=kubernetes_objects)
    with b.section("network"):
        net = build_network(b)
        groups = build_security(b, net)
    with b.section("access.bastion"):
        build_bastion(b, net, groups)
    if spec.spec.mode == "kubeadm":
        build_kubeadm(b, net, groups)
    else:
        build_eks(b, net, groups)
    b.graph.validate()
    return b.graph
