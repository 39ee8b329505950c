"""The starting spec that `kubeaws init` writes: valid as is, with a comment on every field and its choices.

Called by the CLI (`init`) and the tests (every rendering must load with no problems).
"""

from __future__ import annotations

import json
import re

from kubeaws.spec.models import API_VERSION, DEFAULT_KUBERNETES_VERSION, KIND

_PLAIN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_INLINE_COMMENT = re.compile(r"^(.*?\S)  (# .*)$")
COMMENT_COLUMN = 37

_HEADER = """\
# kubeaws cluster spec: edit it, then run `kubeaws plan` and `kubeaws apply` on this file.
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}  # 1-28 chars: lowercase letters, digits, '-' (prefixes every AWS resource)
spec:
  region: {region}
  kubernetesVersion: "{version}"  # quoted: YAML would read 1.30 as the number 1.3
  mode: {mode}  # kubeadm (EC2 instances bootstrapped with kubeadm) | eks (EKS control plane)
  network:
    vpc:
      cidr: 10.0.0.0/16  # kubeaws creates this VPC (/16../24); or `id: vpc-...` plus `subnets:`
                                     # (public: [...], private: [...]) to use an existing VPC
    availabilityZones: [{region}a, {region}b, {region}c]  # adjust to your account's AZs{eks_az}
    natGateway: single  # none (needs mirrors) | single (cheap) | perAZ (survives an AZ outage)
"""

_KUBEADM_NETWORK = """\
    podCIDR: 192.168.0.0/16  # pod addresses; must not overlap the VPC or serviceCIDR
    serviceCIDR: 10.96.0.0/12  # Service ClusterIPs
    cni: calico  # calico | flannel | cilium | aws-vpc-cni (pods get VPC addresses)
    # calico: {encapsulation: ipip}  # ipip | vxlan
"""

_EKS_NETWORK = """\
    serviceCIDR: 172.20.0.0/16  # EKS: a /12../24 in 10/8, 172.16/12 or 192.168/16, outside the VPC
    cni: aws-vpc-cni  # the only CNI kubeaws supports on EKS: pods get VPC addresses
"""

_ACCESS = """\
    # nodePortCIDRs: [10.0.0.0/16]  # who may reach NodePorts (default: the VPC only)
    # securityGroups:  # with vpc.id: existing groups (controlPlane, nodes, bastion, loadBalancer);
    #   nodes: sg-0abc1234  # kubeaws only tags them: their rules stay yours (`kubeaws doctor` checks them)
  access:
    apiEndpoint: private  # private (reach it through the bastion) | public (from adminCIDRs)
    adminCIDRs: [203.0.113.0/24]  # your office/VPN range: SSH to the bastion, and a public API endpoint
    bastion:
      enabled: true
      instanceType: t3.micro
      os: al2023  # al2023 | ubuntu-22.04 | ubuntu-24.04
      # elasticIP: true  # keep the bastion's public address across replacements
    # sshKeyName: my-key  # an existing EC2 key pair for SSH
"""

_CONTROL_PLANE = """\
  controlPlane:
    count: 1  # 1, 3 or 5 (etcd quorum); 3 for production
    instanceType: m5.large
    # schedulable: false  # true removes the control-plane taint (not recommended)
"""

_NODE_GROUPS = """\
  # nodeGroupNamePattern: "{{team}}-{{spec}}-{{cluster}}"  # AWS names of the groups; default {{cluster}}-{{name}}
  nodeGroups:
    - name: default  # unique, lowercase, at most 40 chars
      type: {group_type}{group_comment}
      instanceTypes: [m5.large]  # several types make spot capacity easier to get
      capacity: on-demand  # on-demand | spot
      size: {{min: 1, desired: 2, max: 5}}
      # team: data  # label and instance/volume tag kubeaws.io/team
      labels: {{}}  # e.g. {{team: data}}
      taints: []  # e.g. [{{key: dedicated, value: data, effect: NoSchedule}}]
      # extraVolumes: [{{size: 100}}]  # raw, unformatted EBS disks (e.g. for Rook/Ceph)
"""

_ADDONS = """\
  addons:  # present = installed; `{}` = default options
    metricsServer: {}
    ebsCSI: {}
    # clusterAutoscaler: {}
"""

_KUBEADM_ADDONS = """\
    cloudProviderAWS: {}  # node providerIDs, LoadBalancer Services; the EBS CSI driver needs it
    # rookCeph: {}
  etcdBackup: {everyMinutes: 30, keep: 48}  # etcd snapshots to S3
  # mirrors:  # regions without public registries (e.g. China)
  #   imageRepository: registry.example.cn/k8s
  #   packages: https://mirror.example.cn/k8s
"""

_EKS_EXTRA = """\
  eks:
    authenticationMode: API  # API (access entries) | API_AND_CONFIG_MAP | CONFIG_MAP (aws-auth)
    logging: []  # any of: api, audit, authenticator, controllerManager, scheduler
"""

_TAGS = """\
  # tags:  # on every resource kubeaws creates (at most 40)
  #   team: platform
  #   cost-center: "1234"
"""


def _quote(value: str) -> str:
    return value if _PLAIN.match(value) else json.dumps(value)


def render_init(name: str, region: str, mode: str = "kubeadm") -> str:
    """A commented, valid spec for a cluster `name` in `region` (`mode`: kubeadm or eks)."""
    if mode not in ("kubeadm", "eks"):
        raise ValueError(f"mode must be kubeadm or eks, not {mode!r}")
    eks = mode == "eks"
    parts = [_HEADER.format(
        api_version=API_VERSION, kind=KIND, name=_quote(name), region=_quote(region),
        version=DEFAULT_KUBERNETES_VERSION, mode=mode, eks_az=" (EKS needs at least 2)" if eks else "")]
    parts.append(_EKS_NETWORK if eks else _KUBEADM_NETWORK)
    parts.append(_ACCESS)
    if not eks:
        parts.append(_CONTROL_PLANE)
    parts.append(_NODE_GROUPS.format(
        group_type="managed" if eks else "self-managed",
        group_comment="  # managed (EKS managed node group) | self-managed (launch template + ASG)"
        if eks else "  # self-managed (launch template + ASG); managed is eks mode only"))
    parts.append(_ADDONS)
    parts.append(_EKS_EXTRA if eks else _KUBEADM_ADDONS)
    parts.append(_TAGS)
    return _align("".join(parts))


def _align(text: str) -> str:
    """Put the inline comments in one column."""
    lines = []
    for line in text.splitlines():
        m = _INLINE_COMMENT.match(line)
        lines.append(f"{m[1].ljust(COMMENT_COLUMN - 2)}  {m[2]}" if m else line)
    return "\n".join(lines) + "\n"
