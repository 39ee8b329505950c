"""Model builders: pure functions from a ClusterSpec to the graph of desired AWS resources.

`build(spec)` is called by the public API (kubeaws.api) before planning; no AWS calls happen here.
"""

from __future__ import annotations

from kubeaws.model.bastion import build_bastion
from kubeaws.model.common import Builder
from kubeaws.model.eks import build_eks
from kubeaws.model.graph import Graph
from kubeaws.model.kubeadm import build_kubeadm
from kubeaws.model.network import build_network
from kubeaws.model.security import build_security
from kubeaws.spec.models import ClusterSpec


def build(spec: ClusterSpec) -> Graph:
    """Every desired resource of the cluster, with explicit references between them."""
    b = Builder(spec=spec, graph=Graph(spec.metadata.name, spec.spec.mode))
    net = build_network(b)
    groups = build_security(b, net)
    build_bastion(b, net, groups)
    if spec.spec.mode == "kubeadm":
        build_kubeadm(b, net, groups)
    else:
        build_eks(b, net, groups)
    b.graph.validate()
    return b.graph
