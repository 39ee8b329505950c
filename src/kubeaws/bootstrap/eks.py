"""Boot-time rendering of an EKS cluster (mode eks, docs/eks.md): the nodeadm user data of self-managed
Amazon Linux 2023 nodes, the `aws-auth` ConfigMap (authentication modes with CONFIG_MAP) and the access-entry
plan (modes with API).

User data: a MIME multi-part document (fixed boundary, so renders are deterministic) with one
`application/node.eks.aws` part holding a nodeadm `NodeConfig` (node.eks.aws/v1alpha1; field names from
awslabs/amazon-eks-ami nodeadm/api/v1alpha1/nodeconfig_types.go): `spec.cluster` {name, apiServerEndpoint,
certificateAuthority (base64 CA bundle, as DescribeCluster returns it), cidr (service CIDR)} and
`spec.kubelet` {config: KubeletConfiguration fields merged into nodeadm's defaults (maxPods, clusterDNS, and
`tlsCipherSuites`: the strong list of the kubeadm mode, `bootstrap.kubeadm.TLS_CIPHER_SUITES`, instead of
nodeadm's, which adds two TLS_RSA suites without forward secrecy that kube-bench's cis-1.12 check 4.2.12
refuses; nodeadm already sets serverTLSBootstrap, and EKS approves the kubelets' serving certificates),
flags: kubelet arguments appended to nodeadm's (`--node-labels`, `--register-with-taints`)}. It holds no
secret: the node authenticates with its instance role.

Pure renderers (no AWS call). Called by the EKS model (launch templates' user data, as a `Computed` over the
EksCluster's attrs; aws-auth) and by `kubeaws render` (`eks_artifacts`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2
import yaml

from kubeaws.addons.templating import environment
from kubeaws.bootstrap.kubeadm import TLS_CIPHER_SUITES
from kubeaws.partition import partition_of, role_arn
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec
from kubeaws.spec.nodegroups import node_labels

USER_DATA_LIMIT = 16384
BOUNDARY = "==KUBEAWS-NODEADM-BOUNDARY=="
NODE_CONFIG_API = "node.eks.aws/v1alpha1"
NODE_USERNAME = "system:node:{{EC2PrivateDNSName}}"
NODE_GROUPS = ["system:bootstrappers", "system:nodes"]
#: What `kubeaws render` puts where the EksCluster's attributes go (known only once the cluster exists).
PLACEHOLDER_ENDPOINT = "https://@@EKS_ENDPOINT@@"
PLACEHOLDER_CA = "@@EKS_CERTIFICATE_AUTHORITY_BASE64@@"
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing multi-line strings as literal blocks (readable aws-auth `mapRoles`)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100000)


@cache
def _env() -> jinja2.Environment:
    return environment("kubeaws.bootstrap", "templates/eks")


def _group(spec: ClusterSpec, group: str) -> NodeGroupSpec:
    for ng in spec.spec.node_groups:
        if ng.name == group:
            return ng
    raise ValueError(f"no node group named {group!r}")


def cluster_dns(service_cidr: str) -> str:
    """The cluster DNS address: the 10th address of the service CIDR (172.20.0.0/16 -> 172.20.0.10)."""
    return str(ipaddress.ip_network(service_cidr, strict=False)[10])


def node_config(spec: ClusterSpec, group: str, cluster_endpoint: str, certificate_authority: str,
                service_cidr: str, max_pods: int) -> dict[str, Any]:
    """The nodeadm NodeConfig of a node group, as a dict."""
    ng = _group(spec, group)
    # The labels of the cluster-autoscaler's node template (spec.nodegroups.node_labels), no others.
    labels = ",".join(f"{k}={v}" for k, v in sorted(node_labels(ng).items()))
    flags = [f"--node-labels={labels}"]
    if ng.taints:
        taints = ",".join(f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in ng.taints)
        flags.append(f"--register-with-taints={taints}")
    return {
        "apiVersion": NODE_CONFIG_API,
        "kind": "NodeConfig",
        "spec": {
            "cluster": {"name": spec.name, "apiServerEndpoint": cluster_endpoint,
                        "certificateAuthority": certificate_authority, "cidr": service_cidr},
            "kubelet": {"config": {"maxPods": max_pods, "clusterDNS": [cluster_dns(service_cidr)],
                                   "tlsCipherSuites": list(TLS_CIPHER_SUITES)},
                        "flags": flags},
        },
    }


def render_nodeadm_user_data(spec: ClusterSpec, group: str, cluster_endpoint: str, certificate_authority: str,
                             service_cidr: str, max_pods: int) -> str:
    """The user data of a self-managed node group's launch template (AL2023 EKS AMI): MIME multi-part with
    the group's NodeConfig. At most 16 KB (ValueError otherwise)."""
    doc = node_config(spec, group, cluster_endpoint, certificate_authority, service_cidr, max_pods)
    body = "---\n" + _dump(doc)
    if BOUNDARY in body:
        raise ValueError("the NodeConfig contains the MIME boundary")
    text = _env().get_template("user-data.mime.j2").render(boundary=BOUNDARY, node_config=body.rstrip("\n"))
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise ValueError(f"user data of node group {group} is {size} bytes (EC2 limit {USER_DATA_LIMIT})")
    return text


def aws_auth_role_arn(arn: str) -> str:
    """A role ARN as aws-auth must name it: without the IAM path (the authenticator matches the assumed-role
    ARN, which has none; kubernetes-sigs/aws-iam-authenticator#153). Other ARNs are returned unchanged."""
    match = _ROLE_ARN.match(arn)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else arn


def render_aws_auth(node_role_arns: list[str], extra: list[dict[str, Any]] | None = None) -> str:
    """The `kube-system/aws-auth` ConfigMap: every node role mapped to `system:node:{{EC2PrivateDNSName}}`
    in `system:bootstrappers` + `system:nodes`, then the `extra` mapRoles entries ({rolearn, username,
    groups}) as given (their rolearn stripped of its path too)."""
    seen: set[str] = set()
    roles: list[dict[str, Any]] = []
    for arn in node_role_arns:
        plain = aws_auth_role_arn(arn)
        if plain not in seen:
            seen.add(plain)
            roles.append({"rolearn": plain, "username": NODE_USERNAME, "groups": list(NODE_GROUPS)})
    for entry in extra or []:
        item = dict(entry)
        if "rolearn" in item:
            item["rolearn"] = aws_auth_role_arn(str(item["rolearn"]))
        roles.append(item)
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/managed-by": "kubeaws"}},
        "data": {"mapRoles": _dump(roles)},
    }
    return _dump(doc)


def access_entry_plan(spec: ClusterSpec, node_role_arns: list[str]) -> dict[str, Any]:
    """The access entries kubeaws creates in API modes: one EC2_LINUX entry per node role (cluster admins
    get STANDARD entries with a policy association, decided at apply time from the caller's identity)."""
    return {"clusterName": spec.name, "authenticationMode": spec.spec.eks.authentication_mode,
            "accessEntries": [{"principalArn": arn, "type": "EC2_LINUX"} for arn in dict.fromkeys(node_role_arns)]}


def node_role_arn(spec: ClusterSpec, account_id: str) -> str:
    """The node role's ARN: the brought `iam.nodeRole` (name or ARN) or kubeaws' own
    (`role/kubeaws/<cluster>/<cluster>-node`, as the IAM builder names it)."""
    brought = spec.spec.iam.node_role
    partition = partition_of(spec.spec.region)
    if brought:
        return brought if brought.startswith("arn:") else role_arn(partition, account_id, brought)
    return role_arn(partition, account_id, f"kubeaws/{spec.name}/{spec.name}-node")


def eks_artifacts(spec: ClusterSpec, max_pods: Callable[[str], int], account_id: str = "123456789012",
                  cluster_endpoint: str = PLACEHOLDER_ENDPOINT,
                  certificate_authority: str = PLACEHOLDER_CA) -> dict[str, str]:
    """Generated EKS files for `kubeaws render` (relative path -> content): `eks/user-data/node-<group>.mime`
    per self-managed group (placeholder endpoint and CA unless given), `eks/aws-auth.yaml` when the
    authentication mode includes CONFIG_MAP, `eks/access-entries.json` when it includes API.

    `max_pods(group)` gives a group's maxPods: pass `lambda g: model.maxpods.effective_max_pods(spec, g)`
    (bootstrap may not import the model layer)."""
    body = spec.spec
    out: dict[str, str] = {}
    for ng in body.node_groups:
        if ng.type != "self-managed":
            continue
        pods = max_pods(ng.name)
        out[f"eks/user-data/node-{ng.name}.mime"] = render_nodeadm_user_data(
            spec, ng.name, cluster_endpoint, certificate_authority, body.network.service_cidr, pods)
    roles = [node_role_arn(spec, account_id)]
    mode = body.eks.authentication_mode
    if "CONFIG_MAP" in mode:
        out["eks/aws-auth.yaml"] = render_aws_auth(roles)
    if mode.startswith("API"):
        out["eks/access-entries.json"] = json.dumps(access_entry_plan(spec, roles), indent=2) + "\n"
    return dict(sorted(out.items()))
