"""kubeadm configuration files of a self-managed cluster: `InitConfiguration` + `ClusterConfiguration` +
`KubeletConfiguration` for the first control-plane member, `JoinConfiguration` for the other members and for
each node group.

Pure renderer. Called by `bootstrap.userdata` (the files travel in the user data with placeholders that the
boot script fills from IMDS and the state bucket: `@@ENDPOINT@@`, `@@PORT@@`, `@@CA_HASH@@`, `@@TOKEN@@`,
`@@NODE_NAME@@`, `@@NODE_IP@@`; the token therefore never appears in user data) and by `kubeaws render`.

API version: `kubeadm.k8s.io/v1beta3` before Kubernetes 1.31, `v1beta4` from 1.31 on (v1beta4 turns every
`extraArgs`/`kubeletExtraArgs` map into a list of `{name, value}`; no other field used here differs).
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

from kubeaws.addons import versions
from kubeaws.spec.maxpods import kubelet_max_pods
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec
from kubeaws.spec.nodegroups import node_labels

#: libyaml's safe emitter when available (much faster, same output for these documents).
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

Role = Literal["control-plane", "node"]

AUDIT_POLICY = "/etc/kubernetes/audit-policy.yaml"
AUDIT_LOG_DIR = "/var/log/kubernetes/audit"
ENCRYPTION_CONFIG = "/etc/kubernetes/encryption/config.yaml"
PATCHES_DIR = "/etc/kubeaws/patches"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
#: The etcd EBS volume is mounted here; etcd's data directory is a subdirectory, because kubeadm's preflight
#: (DirAvailable--var-lib-etcd-data) wants it empty and a fresh filesystem holds lost+found at its root.
ETCD_MOUNT = "/var/lib/etcd"
ETCD_DATA_DIR = f"{ETCD_MOUNT}/data"
#: The cluster CA (kubeadm's): it signs the kubelets' serving certificates (serverTLSBootstrap), so the API
#: server verifies kubelets with it (`--kubelet-certificate-authority`, CIS 1.2.5).
CLUSTER_CA = "/etc/kubernetes/pki/ca.crt"
#: TLS 1.2 cipher suites of the API server and the kubelets: ECDHE with AES-GCM or ChaCha20-Poly1305 only,
#: the suites in both of kube-bench's lists (cis-1.11/1.12 checks 1.2.29 and 4.2.12). TLS 1.3 suites are not
#: configurable in Go and are all strong. The ChaCha20 names are the ones Kubernetes keeps for compatibility
#: (k8s.io/component-base/cli/flag: same IDs as the *_SHA256 names), and the ones kube-bench's kubelet list has.
TLS_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
)
#: kubeadm's default admission plugin (NodeRestriction) plus DenyServiceExternalIPs (CIS 1.2.3: no Service
#: may claim an arbitrary external IP, CVE-2020-8554); nothing kubeaws installs uses `externalIPs`.
ADMISSION_PLUGINS = ("NodeRestriction", "DenyServiceExternalIPs")


def _minor(spec: ClusterSpec) -> tuple[int, int]:
    major, minor = spec.spec.kubernetes_version.split(".")[:2]
    return int(major), int(minor)


def api_version(spec: ClusterSpec) -> str:
    """The kubeadm config API version for the spec's Kubernetes version."""
    return "kubeadm.k8s.io/v1beta4" if _minor(spec) >= (1, 31) else "kubeadm.k8s.io/v1beta3"


def _args(spec: ClusterSpec, args: dict[str, str]) -> Any:
    if api_version(spec).endswith("v1beta4"):
        return [{"name": k, "value": v} for k, v in sorted(args.items())]
    return dict(sorted(args.items()))


def _external_cloud(spec: ClusterSpec) -> bool:
    return spec.spec.addons.cloud_provider_aws is not None


def _kubelet_args(spec: ClusterSpec, labels: dict[str, str] | None = None) -> dict[str, str]:
    args = {"node-ip": "@@NODE_IP@@"}
    if _external_cloud(spec):
        args["cloud-provider"] = "external"
    if labels:
        args["node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return args


def _registration(spec: ClusterSpec, taints: list[dict[str, str]], labels: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    return {"name": "@@NODE_NAME@@", "criSocket": CRI_SOCKET, "taints": taints,
            "kubeletExtraArgs": _args(spec, _kubelet_args(spec, labels))}


def _control_plane_taints(spec: ClusterSpec) -> list[dict[str, str]]:
    return [] if spec.spec.control_plane.schedulable else [dict(CONTROL_PLANE_TAINT)]


def _discovery() -> dict[str, Any]:
    return {"bootstrapToken": {"apiServerEndpoint": "@@ENDPOINT@@:@@PORT@@", "token": "@@TOKEN@@",
                               "caCertHashes": ["@@CA_HASH@@"]}}


def cluster_configuration(spec: ClusterSpec) -> dict[str, Any]:
    body = spec.spec
    # The CIS settings kubeadm does not make by default (tests/test_cis.py maps every kube-bench check).
    api_args = {
        "audit-log-path": f"{AUDIT_LOG_DIR}/audit.log", "audit-policy-file": AUDIT_POLICY,
        "audit-log-maxage": "30", "audit-log-maxbackup": "10", "audit-log-maxsize": "100",
        "profiling": "false", "encryption-provider-config": ENCRYPTION_CONFIG,
        "kubelet-certificate-authority": CLUSTER_CA, "tls-cipher-suites": ",".join(TLS_CIPHER_SUITES),
        "enable-admission-plugins": ",".join(ADMISSION_PLUGINS), "service-account-lookup": "true",
        # Projected service-account tokens expire when they say (1 h, renewed by the kubelet) instead of
        # being stretched to a year for clients that never re-read them; every pinned addon re-reads them.
        "service-account-extend-token-expiration": "false",
    }
    cm_args = {"profiling": "false", "terminated-pod-gc-threshold": "1000"}
    if _external_cloud(spec):
        cm_args["cloud-provider"] = "external"
    cfg: dict[str, Any] = {
        "apiVersion": api_version(spec), "kind": "ClusterConfiguration",
        "clusterName": spec.name,
        "kubernetesVersion": "v" + versions.kubernetes_patch(body.kubernetes_version),
        "controlPlaneEndpoint": "@@ENDPOINT@@:@@PORT@@",
        "networking": {"podSubnet": body.network.pod_cidr, "serviceSubnet": body.network.service_cidr,
                       "dnsDomain": "cluster.local"},
        "apiServer": {
            "certSANs": ["@@ENDPOINT@@", "127.0.0.1", "localhost"],
            "extraArgs": _args(spec, api_args),
            "extraVolumes": [
                {"name": "audit-policy", "hostPath": AUDIT_POLICY, "mountPath": AUDIT_POLICY, "readOnly": True,
                 "pathType": "File"},
                {"name": "audit-log", "hostPath": AUDIT_LOG_DIR, "mountPath": AUDIT_LOG_DIR,
                 "pathType": "DirectoryOrCreate"},
                {"name": "encryption-config", "hostPath": "/etc/kubernetes/encryption",
                 "mountPath": "/etc/kubernetes/encryption", "readOnly": True, "pathType": "DirectoryOrCreate"},
            ],
        },
        "controllerManager": {"extraArgs": _args(spec, cm_args)},
        "scheduler": {"extraArgs": _args(spec, {"profiling": "false"})},
        "etcd": {"local": {"dataDir": ETCD_DATA_DIR}},
    }
    if body.mirrors.image_repository:
        cfg["imageRepository"] = body.mirrors.image_repository
    return cfg


def kubelet_configuration(spec: ClusterSpec) -> dict[str, Any]:
    """Cluster-wide kubelet settings (kubeadm stores them in the kubelet-config ConfigMap for every node).

    `serverTLSBootstrap`: each kubelet asks the cluster CA for its serving certificate (a CSR of signer
    `kubernetes.io/kubelet-serving`) instead of signing one itself, so that the API server and metrics-server
    can verify kubelets; kubeaws' approver on the control plane (`bootstrap.serving_approver`) approves only
    the names and addresses of the EC2 instance the requesting node is."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}},
        "authorization": {"mode": "Webhook"},
        "protectKernelDefaults": True,
        "readOnlyPort": 0,
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "tlsCipherSuites": list(TLS_CIPHER_SUITES),
        "makeIPTablesUtilChains": True,
        "eventRecordQPS": 5,
    }


def _dump(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)


def init_config(spec: ClusterSpec) -> str:
    init: dict[str, Any] = {
        "apiVersion": api_version(spec), "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": "@@NODE_IP@@", "bindPort": 6443},
        "nodeRegistration": _registration(spec, _control_plane_taints(spec)),
    }
    return _dump([init, cluster_configuration(spec), kubelet_configuration(spec)])


def join_control_plane_config(spec: ClusterSpec) -> str:
    join = {
        "apiVersion": api_version(spec), "kind": "JoinConfiguration",
        "discovery": _discovery(),
        "nodeRegistration": _registration(spec, _control_plane_taints(spec)),
        "controlPlane": {"localAPIEndpoint": {"advertiseAddress": "@@NODE_IP@@", "bindPort": 6443}},
    }
    return _dump([join])


def kubelet_patch(spec: ClusterSpec, group: NodeGroupSpec) -> str | None:
    """The kubeadm `kubeletconfiguration` patch of a group (per-node settings), if any: maxPods, the group's
    own or, with the AWS VPC CNI, what its instance types' ENIs allow (`spec.maxpods.kubelet_max_pods`)."""
    pods = kubelet_max_pods(spec, group.name)
    if pods is None:
        return None
    return yaml.dump({"maxPods": pods}, Dumper=_DUMPER)


def join_node_config(spec: ClusterSpec, group: NodeGroupSpec) -> str:
    taints = [{"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect} for t in group.taints]
    join: dict[str, Any] = {
        "apiVersion": api_version(spec), "kind": "JoinConfiguration",
        "discovery": _discovery(),
        # The labels of the cluster-autoscaler's node template (spec.nodegroups.node_labels), no others.
        "nodeRegistration": _registration(spec, taints, node_labels(group)),
    }
    if kubelet_max_pods(spec, group.name) is not None:
        join["patches"] = {"directory": PATCHES_DIR}
    return _dump([join])


def find_group(spec: ClusterSpec, name: str | None) -> NodeGroupSpec:
    for group in spec.spec.node_groups:
        if group.name == name:
            return group
    raise ValueError(f"no node group named {name!r} in spec.nodeGroups")


def render_kubeadm_configs(spec: ClusterSpec, role: Role, group: str | None = None) -> dict[str, str]:
    """File name -> kubeadm config YAML (with boot-time placeholders): for "control-plane" `init.yaml` and
    `join-control-plane.yaml`, for "node" `join-<group>.yaml`."""
    if role == "control-plane":
        return {"init.yaml": init_config(spec), "join-control-plane.yaml": join_control_plane_config(spec)}
    ng = find_group(spec, group)
    return {f"join-{ng.name}.yaml": join_node_config(spec, ng)}
