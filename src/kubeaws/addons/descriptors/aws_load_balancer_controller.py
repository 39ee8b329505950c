"""The AWS Load Balancer Controller (kubernetes-sigs/aws-load-balancer-controller): ALBs for Ingresses and NLBs
for Services, with its CRDs (TargetGroupBinding, IngressClassParams...) vendored verbatim from its chart.

Permissions: its upstream docs/install/iam_policy.json (vendored, sha256 checked) in the cluster's partition,
every statement the upstream scopes by the `elbv2.k8s.aws/cluster` tag scoped to THIS cluster's name (the
controller tags what it creates with it): kubeadm on the node role (the control-plane role has no room left
under IAM's 10,240-character limit for a role's inline policies), the controller then on the nodes' network,
the only way a pod reaches the node role's credentials at hop limit 1; EKS: an IRSA role. Its webhook (9443)
is called by the API server: a flow from the control plane to the nodes. Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

import json
from typing import Any

from kubeaws.addons import vendored
from kubeaws.addons.descriptor import CONTROL_PLANE, NODES, Addon, AddonFlow, Irsa
from kubeaws.addons.policy import ELB, ec2, used
from kubeaws.partition import arn, service_principal

VERSION = "v3.5.0"
NAME = "aws-load-balancer-controller"
#: The tag the controller puts on what it creates, its value the cluster name (`--cluster-name`).
CLUSTER_TAG = "elbv2.k8s.aws/cluster"


def _partitioned(resource: str, partition: str) -> str:
    return f"arn:{partition}:{resource.removeprefix('arn:aws:')}" if resource.startswith("arn:aws:") else resource


def _scoped(condition: dict[str, Any], cluster: str) -> dict[str, Any]:
    """The upstream's `Null: {<tag key>: "false"}` (the tag is present, any cluster's) as `StringEquals:
    {<tag key>: <cluster>}`; the other conditions as they are."""
    out = {op: dict(values) for op, values in condition.items()}
    null = out.get("Null", {})
    for key in [k for k, v in null.items() if k.endswith(f"/{CLUSTER_TAG}") and v == "false"]:
        del null[key]
        out.setdefault("StringEquals", {})[key] = cluster
    if "Null" in out and not null:
        del out["Null"]
    return out


def _arns(partition: str) -> dict[int, list[str]]:
    """The resources of the upstream statements whose Resource is "*" although their actions take ARNs (so
    that parliament has nothing to say): upstream statement number -> ARNs."""
    elb_principal = service_principal(ELB, partition)
    lbs = [arn(partition, ELB, r, "*", "*") for r in ("loadbalancer/app/*/*", "loadbalancer/net/*/*")]
    listeners = [arn(partition, ELB, r, "*", "*") for r in ("listener/app/*/*/*", "listener/net/*/*/*",
                                                           "listener-rule/app/*/*/*/*", "listener-rule/net/*/*/*/*")]
    return {
        1: [arn(partition, "iam", f"role/aws-service-role/{elb_principal}/AWSServiceRoleForElasticLoadBalancing",
                account="*")],
        4: [ec2("security-group", partition)], 5: [ec2("security-group", partition), ec2("vpc", partition)],
        8: [ec2("security-group", partition)],
        9: [arn(partition, ELB, "targetgroup/*/*", "*", "*"), *lbs], 10: [*lbs, *listeners], 16: [*lbs, *listeners],
    }


#: Upstream statement number -> actions moved to a statement of their own with these EC2 resource kinds (none:
#: the action takes no resource, "*").
SPLIT = {2: (("ec2:GetCoipPoolUsage", "ec2:GetSecurityGroupsForVpc"), ("coip-pool", "vpc")),
         16: ((f"{ELB}:SetWebAcl",), ())}


def policy(cluster: str, partition: str = "aws") -> dict[str, Any]:
    """The upstream policy for this cluster and partition, each statement given a Sid: its ARNs in the
    partition, its `elbv2.k8s.aws/cluster` conditions on this cluster, ARNs instead of "*" where the actions
    take them (`_arns`, `SPLIT`), and the security groups whose ingress it edits (upstream: any) those of the
    cluster (`kubernetes.io/cluster/<cluster>` owned or shared: the nodes' groups it opens to its load
    balancers). Statement 3 (the certificate, Cognito pool, WAF ACL and Shield protection an Ingress names,
    wherever the user keeps them) stays on "*" as upstream has it."""
    upstream = json.loads(vendored.read(NAME, "iam_policy.json", VERSION))
    arns = _arns(partition)
    statements: list[dict[str, Any]] = []
    for index, statement in enumerate(upstream["Statement"], 1):
        resource = statement["Resource"]
        scoped = {"Sid": f"LoadBalancerController{index:02d}", **statement,
                  "Resource": [_partitioned(r, partition) for r in resource] if isinstance(resource, list)
                  else arns.get(index, _partitioned(resource, partition))}
        if "Condition" in statement:
            scoped["Condition"] = _scoped(statement["Condition"], cluster)
        if index == 4:
            scoped["Condition"] = used(cluster)
        if index in SPLIT:
            moved, kinds = SPLIT[index]
            scoped["Action"] = [a for a in statement["Action"] if a not in moved]
            statements.append(scoped)
            scoped = {"Sid": f"LoadBalancerController{index:02d}Resources", "Effect": "Allow", "Action": list(moved),
                      "Resource": [ec2(kind, partition) for kind in kinds] or "*"}
        statements.append(scoped)
    return {"Version": upstream["Version"], "Statement": statements}


def node_statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    return list(policy(cluster, partition)["Statement"])


ADDON = Addon(
    name=NAME, option="aws_load_balancer_controller", template=f"{NAME}.yaml.j2", order=70,
    modes=frozenset({"kubeadm", "eks"}), version=VERSION, vendored=(f"{NAME}/{VERSION}/crds.yaml",),
    images={NAME: f"public.ecr.aws/eks/aws-load-balancer-controller:{VERSION}",
            "kube-webhook-certgen": "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.5.2"},
    node_statements=node_statements,
    irsa=Irsa("kube-system", NAME, policy=policy),
    flows=(AddonFlow(CONTROL_PLANE, NODES, "tcp", 9443, 9443, "aws-load-balancer-controller webhook"),),
)
