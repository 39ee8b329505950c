"""Contract scenarios of the EKS kinds: EksCluster, OidcProvider, AccessEntry, EksAddon, EksNodegroup. The children
of a cluster are made in a raw EKS cluster named after the context's cluster (as kubeaws names it), with a
raw role, VPC, subnets and launch template.

moto adaptations: EKS there is metadata only (clusters and node groups ACTIVE at once, deleted at once);
access entries and add-ons are missing (HTTP 404), so their scenarios install `FakeEks` (tests/fake_aws.py),
which answers those calls from dicts; every moto cluster has the same OIDC issuer (drawn once per moto
process), so the OIDC provider scenario gives each cluster its own in DescribeCluster answers
(`unique_issuer`), as AWS does.

Used by tests/contract/scenarios.py.
"""

from __future__ import annotations

from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.resources.base import Desired
from kubeaws.resources.oidc_provider import EKS_ROOT_CA_THUMBPRINT, STS_AUDIENCE
from tests.contract.harness import Scenario, tags_for
from tests.contract.identity import role
from tests.contract.network import OTHER_SUBNET, ami, group, subnets, vpc
from tests.fake_aws import ACCOUNT, FakeEks

OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/other"


def cluster(ctx: AwsContext) -> dict[str, str]:
    """A raw EKS cluster named after the context's cluster: {name, role_arn, issuer, subnets (comma-joined)}."""
    role_arn = role(ctx, f"{ctx.cluster}-eks")["Arn"]
    subnet_ids = sorted(subnets(ctx, vpc(ctx)))
    made = ctx.call("eks", "create_cluster", name=ctx.cluster, roleArn=role_arn, version="1.30",
                    resourcesVpcConfig={"subnetIds": subnet_ids})["cluster"]
    issuer = ctx.call("eks", "describe_cluster", name=made["name"])["cluster"]["identity"]["oidc"]["issuer"]
    return {"name": made["name"], "role_arn": role_arn, "issuer": issuer, "subnets": ",".join(subnet_ids)}


def install_fake_eks(ctx: AwsContext) -> None:
    FakeEks().install(ctx)


def unique_issuer(ctx: AwsContext) -> None:
    """DescribeCluster answers with an OIDC issuer of the cluster's own."""
    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        oidc = ((parsed.get("cluster") or {}).get("identity") or {}).get("oidc")
        if oidc:
            oidc["issuer"] = f"https://oidc.eks.us-east-1.amazonaws.com/id/{ctx.cluster.upper()}"

    ctx.add_hook("after-call.eks.DescribeCluster", rewrite)


def _eks_cluster(ctx: AwsContext) -> Desired:
    """With secrets encryption and the service CIDR: both refused changes need a value to change from."""
    vpc_id = vpc(ctx)
    key = ctx.call("kms", "create_key", Description="raw")["KeyMetadata"]["Arn"]
    props = {"name": ctx.cluster, "version": "1.30", "role_arn": role(ctx, f"{ctx.cluster}-eks")["Arn"],
             "subnet_ids": sorted(subnets(ctx, vpc_id)), "security_group_ids": [group(ctx, vpc_id, "control-plane")],
             "endpoint_public": True, "endpoint_private": True, "public_access_cidrs": ["203.0.113.0/24"],
             "logging": ["api", "audit"], "encryption_key_arn": key, "authentication_mode": "CONFIG_MAP",
             "service_cidr": "10.96.0.0/12"}
    return Desired("EksCluster", "main", props, tags=tags_for(ctx, "EksCluster", "main"))


def _oidc_provider(ctx: AwsContext) -> Desired:
    props = {"url": cluster(ctx)["issuer"], "client_ids": [STS_AUDIENCE], "thumbprints": [EKS_ROOT_CA_THUMBPRINT]}
    return Desired("OidcProvider", "main", props, tags=tags_for(ctx, "OidcProvider", "main"))


def _access_entry(ctx: AwsContext) -> Desired:
    made = cluster(ctx)
    props = {"cluster_name": made["name"], "principal_arn": made["role_arn"], "type": "STANDARD",
             "kubernetes_groups": ["kubeaws-admins"], "policy_arns": []}
    return Desired("AccessEntry", "admin", props, tags=tags_for(ctx, "AccessEntry", "admin"))


def _eks_addon(ctx: AwsContext) -> Desired:
    props = {"cluster_name": cluster(ctx)["name"], "addon_name": "vpc-cni", "addon_version": "v1.18.0-eksbuild.1",
             "service_account_role_arn": None}
    return Desired("EksAddon", "vpc-cni", props, tags=tags_for(ctx, "EksAddon", "vpc-cni"))


def _eks_nodegroup(ctx: AwsContext) -> Desired:
    made = cluster(ctx)
    template = ctx.call("ec2", "create_launch_template", LaunchTemplateName=f"{ctx.cluster}-managed",
                        LaunchTemplateData={"ImageId": ami(ctx)})["LaunchTemplate"]["LaunchTemplateId"]
    props = {"cluster_name": made["name"], "nodegroup_name": f"{ctx.cluster}-managed",
             "node_role_arn": made["role_arn"], "subnet_ids": made["subnets"].split(","),
             "launch_template": {"id": template, "version": "1"},
             "scaling": {"min": 1, "max": 3, "desired": 1}, "labels": {"kubeaws.io/node-group": "managed"},
             "taints": [], "capacity_type": "ON_DEMAND", "instance_types": ["m5.large"]}
    return Desired("EksNodegroup", "managed", props, tags=tags_for(ctx, "EksNodegroup", "managed"))


EKS = [
    Scenario("EksCluster", _eks_cluster,
             changes={"name": {"name": "other"}, "role_arn": {"role_arn": OTHER_ROLE},
                      "encryption_key_arn": {"encryption_key_arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/other"},
                      "service_cidr": {"service_cidr": "172.20.0.0/16"}},
             delete_calls=(("eks", "DeleteCluster"),), create_call=("eks", "CreateCluster")),
    Scenario("OidcProvider", _oidc_provider,
             changes={"url": {"url": "https://oidc.eks.us-east-1.amazonaws.com/id/OTHER"}},
             delete_calls=(("iam", "DeleteOpenIDConnectProvider"),),
             create_call=("iam", "CreateOpenIDConnectProvider"), fakes=unique_issuer),
    Scenario("AccessEntry", _access_entry,
             changes={"cluster_name": {"cluster_name": "other"}, "principal_arn": {"principal_arn": OTHER_ROLE},
                      "type": {"type": "EC2_LINUX"}},
             delete_calls=(("eks", "DeleteAccessEntry"),), create_call=("eks", "CreateAccessEntry"),
             fakes=install_fake_eks),
    Scenario("EksAddon", _eks_addon,
             changes={"cluster_name": {"cluster_name": "other"}, "addon_name": {"addon_name": "coredns"}},
             delete_calls=(("eks", "DeleteAddon"),), create_call=("eks", "CreateAddon"), fakes=install_fake_eks),
    Scenario("EksNodegroup", _eks_nodegroup,
             changes={"nodegroup_name": {"nodegroup_name": "other"}, "cluster_name": {"cluster_name": "other"},
                      "node_role_arn": {"node_role_arn": OTHER_ROLE}, "subnet_ids": {"subnet_ids": [OTHER_SUBNET]},
                      "capacity_type": {"capacity_type": "SPOT"}, "instance_types": {"instance_types": ["m5.xlarge"]},
                      "launch_template_id": {"launch_template": {"id": "lt-0fffffffffffffff0", "version": "1"}}},
             delete_calls=(("eks", "DeleteNodegroup"),), create_call=("eks", "CreateNodegroup")),
]
