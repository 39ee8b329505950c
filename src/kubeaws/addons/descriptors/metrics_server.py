"""metrics-server (resource metrics for `kubectl top` and the HorizontalPodAutoscaler). kubeadm: the manifests
(it verifies the kubelets' serving certificates: serverTLSBootstrap, docs/security.md) and the kubelet port
from the nodes it may run on; EKS: the `metrics-server` community add-on. Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from kubeaws.addons.descriptor import CONTROL_PLANE, NODES, Addon, AddonFlow

IMAGE = "registry.k8s.io/metrics-server/metrics-server:v0.7.2"

ADDON = Addon(
    name="metrics-server", option="metrics_server", order=40, template="metrics-server.yaml.j2",
    modes=frozenset({"kubeadm", "eks"}), images={"metrics-server": IMAGE}, eks_addon="metrics-server",
    # kubeadm: it scrapes every kubelet from a node (EKS: the VPC CNI's pod-traffic rule covers nodes to nodes).
    flows=tuple(AddonFlow(NODES, target, "tcp", 10250, 10250, "kubelet API from metrics-server",
                          frozenset({"kubeadm"})) for target in (CONTROL_PLANE, NODES)),
)
