"""IAM roles for service accounts (IRSA) on EKS: a role per addon that calls AWS (the descriptors with `irsa`:
cluster-autoscaler, EBS CSI driver...), trusted only by that addon's Kubernetes service account through the
cluster's OIDC provider, with least-privilege permissions.

Called by model.eks. Pure.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons import enabled
from kubeaws.addons.descriptors.cluster_autoscaler import cluster_autoscaler_policy
from kubeaws.addons.descriptors.ebs_csi import POLICY_NAME as EBS_CSI_POLICY_NAME
from kubeaws.model.common import Builder
from kubeaws.partition import STS_AUDIENCE, managed_policy, partition_of
from kubeaws.resources.base import Computed, Ref

__all__ = ["EBS_CSI_POLICY", "EBS_CSI_POLICY_NAME", "build_irsa", "cluster_autoscaler_policy", "irsa_role",
           "web_identity_trust"]
#: The EBS CSI driver's managed policy in the commercial partition (`managed_policy` for the others).
EBS_CSI_POLICY = managed_policy("aws", EBS_CSI_POLICY_NAME)


def web_identity_trust(provider_arn: str, issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Only `system:serviceaccount:<namespace>:<service_account>` of this cluster may assume the role."""
    host = issuer.removeprefix("https://")
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                       f"{host}:aud": STS_AUDIENCE}},
    }]}


def irsa_role(b: Builder, logical: str, namespace: str, service_account: str,
              inline: dict[str, Any] | None = None, managed: list[str] | None = None) -> Ref:
    """A role assumable only by one service account of the cluster; returns a Ref to its ARN."""
    trust = Computed(web_identity_trust, {
        "provider_arn": Ref("OidcProvider", "main", "arn"), "issuer": Ref("EksCluster", "main", "oidc_issuer"),
        "namespace": namespace, "service_account": service_account}, f"{logical} trust policy")
    role = b.owned("IamRole", logical, {
        "name": b.display(logical), "path": f"/kubeaws/{b.cluster}/", "assume_role_policy": trust,
        "inline_policies": {f"kubeaws-{logical}": inline} if inline else {},
        "managed_policy_arns": sorted(managed or [])})
    return Ref(role.kind, role.name, "arn")


def build_irsa(b: Builder) -> dict[str, Ref]:
    """IRSA roles of the addons the spec enables (their descriptors' `irsa`); addon name -> role ARN."""
    partition = partition_of(b.spec.spec.region)
    roles: dict[str, Ref] = {}
    for addon in enabled(b.spec):
        if addon.irsa is None:
            continue
        irsa = addon.irsa
        roles[addon.name] = irsa_role(
            b, addon.name, irsa.namespace, irsa.service_account,
            inline=irsa.policy(b.cluster, partition) if irsa.policy is not None else None,
            managed=[managed_policy(partition, name) for name in irsa.managed])
    return roles
