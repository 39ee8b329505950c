"""EKS cluster builder: the cluster and node IAM roles, the Secrets encryption key, the EKS control plane, its
OIDC provider (IRSA), node-role mapping (access entries), the core EKS addons, self-managed node groups
(launch template + Auto Scaling group with nodeadm user data on the EKS-optimized AMI) and managed node groups
(with a kubeaws launch template so tags, IMDSv2 and encryption still apply). The spec's addons come from
their descriptors (kubeaws.addons.DESCRIPTORS): an EKS add-on where the descriptor names one, else its
manifests as Kubernetes objects; an IRSA role where it has one.

Called by `model.build` for `mode: eks`. Pure.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubeaws.addons import DESCRIPTORS, enabled
from kubeaws.aws.tags import k8s_cluster_tag
from kubeaws.bootstrap.eks import render_aws_auth, render_nodeadm_user_data
from kubeaws.model.addon_objects import declare_addon
from kubeaws.model.common import Builder, node_group_path
from kubeaws.model.control_plane import add_launch_template, metadata_options, volume_device
from kubeaws.model.flows import CONTROL_PLANE, NODES
from kubeaws.model.iam import instance_profile
from kubeaws.model.images import architecture
from kubeaws.model.irsa import build_irsa
from kubeaws.model.maxpods import effective_max_pods
from kubeaws.model.network import NetworkRefs
from kubeaws.model.nodegroups import autoscaler_tags, build_node_groups, extra_devices
from kubeaws.partition import STS_AUDIENCE, managed_policy, partition_of, service_principal
from kubeaws.resources.base import Computed, Lookup, Ref
from kubeaws.resources.eks_nodegroup import update_config
from kubeaws.resources.kubernetes_object import owned_manifest
from kubeaws.spec.models import NodeGroupSpec
from kubeaws.spec.nodegroups import group_name, launch_tags, launch_template_name, node_labels

CLUSTER_POLICY_NAMES = ("AmazonEKSClusterPolicy",)
NODE_POLICY_NAMES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy")
CORE_ADDONS = ("vpc-cni", "kube-proxy", "coredns")
#: The root CA thumbprint of the EKS OIDC issuers (AWS no longer checks it for them; the API still wants one).
OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
ADDONS = {addon.name: addon for addon in DESCRIPTORS}


def cluster_policies(partition: str) -> list[str]:
    """The EKS cluster role's AWS managed policies in a partition."""
    return sorted(managed_policy(partition, name) for name in CLUSTER_POLICY_NAMES)


def node_policies(partition: str) -> list[str]:
    """The node role's AWS managed policies in a partition."""
    return sorted(managed_policy(partition, name) for name in NODE_POLICY_NAMES)


def trust(service: str, partition: str) -> dict[str, Any]:
    """`service` (`ec2`, `eks`) may assume the role: its principal in the partition."""
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                    "Principal": {"Service": service_principal(service, partition)},
                                                    "Action": "sts:AssumeRole"}]}


def eks_image(version: str, ng: NodeGroupSpec) -> str | Lookup:
    """The group's explicit AMI, else the EKS-optimized Amazon Linux 2023 AMI for the cluster version."""
    if ng.ami:
        return ng.ami
    arch = architecture(ng.instance_types[0])
    return Lookup("ssm", f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/{arch}/standard/recommended/"
                         "image_id")


def _role(b: Builder, logical: str, service: str, policies: list[str], brought: str | None) -> Ref:
    if brought:
        return b.brought("IamRole", logical, brought)
    partition = partition_of(b.spec.spec.region)
    return b.owned("IamRole", logical, {
        "name": b.display(logical), "path": f"/kubeaws/{b.cluster}/", "assume_role_policy": trust(service, partition),
        "inline_policies": {}, "managed_policy_arns": policies})


def build_eks(b: Builder, net: NetworkRefs, groups: dict[str, Ref]) -> None:
    body = b.spec.spec  # resolved by `build`: its max pods were checked with its instance-type facts
    access = body.access
    partition = partition_of(body.region)
    cluster_role = _role(b, "eks-cluster", "eks", cluster_policies(partition), body.iam.control_plane_role)
    node_role = _role(b, "node", "ec2", node_policies(partition), body.iam.node_role)
    node_role_arn = Ref(node_role.kind, node_role.name, "arn")
    instance_profile(b, "node", node_role, body.iam.node_role)

    key_arn: str | Ref | None = None
    if body.eks.encryption.enabled:
        key_arn = body.eks.encryption.kms_key_arn or Ref(b.owned("KmsKey", "secrets", {
            "description": f"kubeaws {b.cluster}: EKS Secrets encryption",
            "alias": f"alias/kubeaws/{b.cluster}",
        }).kind, "secrets", "arn")

    public = access.api_endpoint == "public"
    cluster = b.owned("EksCluster", "main", {
        "name": b.cluster, "version": body.kubernetes_version,
        "role_arn": Ref(cluster_role.kind, cluster_role.name, "arn"),
        "subnet_ids": sorted([*net.private_subnets, *net.public_subnets], key=str),
        "security_group_ids": [groups[CONTROL_PLANE]],
        "endpoint_public": public, "endpoint_private": True,
        "public_access_cidrs": sorted(access.admin_cidrs) if public else [],
        "logging": sorted(body.eks.logging), "encryption_key_arn": key_arn,
        "authentication_mode": body.eks.authentication_mode,
        "service_cidr": body.network.service_cidr,
    })
    b.owned("OidcProvider", "main", {"url": Ref(cluster.kind, cluster.name, "oidc_issuer"),
                                      "client_ids": [STS_AUDIENCE], "thumbprints": [OIDC_THUMBPRINT]})

    mapped: list[str] = []
    if body.eks.authentication_mode in ("CONFIG_MAP", "API_AND_CONFIG_MAP"):
        mapped.append(_aws_auth(b, cluster, node_role_arn))
    if body.eks.authentication_mode in ("API", "API_AND_CONFIG_MAP"):
        mapped.append(b.owned("AccessEntry", "node", {"cluster_name": Ref(cluster.kind, cluster.name, "name"),
                                                      "principal_arn": node_role_arn, "type": "EC2_LINUX"}).key)
    irsa = build_irsa(b)
    addons: dict[str, Ref | None] = {name: None for name in CORE_ADDONS}
    for addon in enabled(b.spec):
        if addon.eks_addon is not None:
            addons[addon.eks_addon] = irsa.get(addon.name)
        else:
            declare_addon(b, Ref(cluster.kind, cluster.name, "name"), addon, role_arn=irsa.get(addon.name))
    for name, role_arn in addons.items():
        # No version: EKS installs the add-on's default version for the cluster's Kubernetes version.
        b.owned("EksAddon", name, {"cluster_name": Ref(cluster.kind, cluster.name, "name"), "addon_name": name,
                                   "addon_version": None, "service_account_role_arn": role_arn},
                create_only=frozenset({"addon_version"}))

    spec = b.spec

    def user_data(group: str) -> Computed:
        return Computed(render_nodeadm_user_data, {
            "spec": spec, "group": group, "cluster_endpoint": Ref(cluster.kind, cluster.name, "endpoint"),
            "certificate_authority": Ref(cluster.kind, cluster.name, "certificate_authority"),
            "service_cidr": body.network.service_cidr,
            "max_pods": effective_max_pods(spec, group),
        }, f"nodeadm user data ({group})")

    self_managed = build_node_groups(b, net, groups, instance_profile=Ref("InstanceProfile", "node", "name"),
                                     user_data_for=user_data,
                                     image_for=lambda ng: eks_image(body.kubernetes_version, ng))
    # A node must never boot before its role is mapped: it would never join.
    for refs in self_managed.values():
        desired = b.graph[refs.auto_scaling_group.key]
        b.graph.replace(_with_deps(desired, mapped))
    for index, ng in enumerate(body.node_groups):
        if ng.type == "managed":
            with b.section(node_group_path(ng.name)):
                _managed_group(b, net, groups, cluster, node_role_arn, ng, index, mapped)


def aws_auth_manifest(cluster: str, node_role_arn: str) -> dict[str, Any]:
    """The aws-auth ConfigMap mapping the node role (system:bootstrappers, system:nodes), labelled as ours."""
    return owned_manifest(cluster, yaml.safe_load(render_aws_auth([node_role_arn])))


def _aws_auth(b: Builder, cluster: Ref, node_role_arn: Ref) -> str:
    """Declare the aws-auth ConfigMap (applied through the Kubernetes API); its key, for dependencies."""
    return b.owned("KubernetesObject", "configmap/kube-system/aws-auth", {
        "cluster_name": Ref(cluster.kind, cluster.name, "name"),
        "manifest": Computed(aws_auth_manifest, {"cluster": b.cluster, "node_role_arn": node_role_arn},
                             "aws-auth ConfigMap"),
    }).key


def _with_deps(desired: Any, keys: list[str]) -> Any:
    from dataclasses import replace

    return replace(desired, depends_on=tuple(sorted({*desired.depends_on, *keys})))


def _managed_group(b: Builder, net: NetworkRefs, groups: dict[str, Ref], cluster: Ref, node_role_arn: Ref,
                   ng: NodeGroupSpec, index: int, mapped: list[str]) -> None:
    """A managed node group with a kubeaws launch template (no AMI or user data: EKS provides them). Names,
    labels and tags as for self-managed groups (`spec.nodegroups`)."""
    template = add_launch_template(b, f"mng-{ng.name}", {
        "image_id": None, "instance_type": None, "key_name": b.spec.spec.access.ssh_key_name,
        "iam_instance_profile": None, "security_group_ids": [groups[NODES]],
        # Hop limit 1: pods use IRSA, never the node role (host-network pods such as the VPC CNI still reach IMDS).
        "metadata_options": metadata_options(1),
        "block_devices": [volume_device(ng.root_volume, "/dev/xvda"), *extra_devices(ng, index)],
        "user_data": None,
    }, {**ng.tags, **launch_tags(ng)}, NODES, aws_name=launch_template_name(b.spec, ng))
    name = group_name(b.spec, ng)
    b.owned("EksNodegroup", ng.name, {
        "cluster_name": Ref(cluster.kind, cluster.name, "name"), "nodegroup_name": name,
        "node_role_arn": node_role_arn, "subnet_ids": sorted(net.private_subnets, key=str),
        "launch_template": {"id": template, "version": Ref(template.kind, template.name, "latest_version")},
        "scaling": {"min": ng.size.min, "max": ng.size.max, "desired": ng.size.desired},
        "labels": node_labels(ng),
        "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in ng.taints],
        "capacity_type": "SPOT" if ng.capacity == "spot" else "ON_DEMAND",
        "instance_types": list(ng.instance_types),
        # Only when the spec sets it: EKS's default (1 at a time) is not a change to plan.
        **({"update_config": update_config(ng.rollout.max_unavailable)}
           if ng.rollout.max_unavailable is not None else {}),
    }, extra_tags={**ng.tags, **autoscaler_tags(b.cluster, ng), k8s_cluster_tag(b.cluster): "owned"},
        depends_on=tuple(mapped), display=name)
