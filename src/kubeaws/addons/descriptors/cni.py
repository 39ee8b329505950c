"""The CNIs of a kubeadm cluster (`network.cni`), applied at boot by the first control-plane member: nodes are
not Ready without one, and a cluster must come up even where kubeaws cannot reach its API. calico: the
tigera-operator manifest (vendored, kubeaws.addons.upstream) and the `Installation` rendered here; flannel:
rendered here; cilium: its chart rendered when kubeaws is built (vendored, kubeaws.addons.upstream). Their
pod traffic between nodes is in kubeaws.model.flows (cni_flows). Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from kubeaws.addons import versions
from kubeaws.addons.descriptor import Addon

CALICO_VERSION = versions.CALICO_VERSION
CILIUM_VERSION = versions.CILIUM_VERSION

CALICO = Addon(name="cni-calico", option=None, cni="calico", order=10, template="calico.yaml.j2", boot=True,
               cr_kinds=frozenset({"Installation", "APIServer"}), version=CALICO_VERSION)
FLANNEL = Addon(name="cni-flannel", option=None, cni="flannel", order=11, template="flannel.yaml.j2", boot=True,
                images={"flannel": "docker.io/flannel/flannel:v0.26.1",
                        "flannel-cni-plugin": "docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2"})
CILIUM = Addon(name="cni-cilium", option=None, cni="cilium", order=12, boot=True, version=CILIUM_VERSION)
