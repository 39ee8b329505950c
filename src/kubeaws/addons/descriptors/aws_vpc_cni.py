"""The Amazon VPC CNI (aws/amazon-vpc-cni-k8s) as the CNI of a kubeadm cluster (`network.cni: aws-vpc-cni`):
pods get addresses of the nodes' subnets, on secondary ENIs the CNI creates and attaches. EKS installs it as
the `vpc-cni` managed add-on instead (kubeaws.model.eks), so this descriptor is kubeadm only.

Its manifest is the release's config/master/aws-k8s-cni.yaml, vendored verbatim (vendor/SOURCES.json); per
cluster, the `aws-node` DaemonSet gets the images of the cluster's region's EKS registry (the account differs
per region and partition: `registry`) and `CLUSTER_NAME`, with which the CNI tags every ENI it creates or
manages `cluster.k8s.amazonaws.com/name=<cluster>`: the tag its permissions are scoped by. `aws-node` runs on
the host network, so it reaches the instance metadata at the hop limit of 1 and the instance role's
credentials. It runs on every node, control plane included: the node role gets its statements (`statements`,
AmazonEKS_CNI_Policy's actions scoped to the cluster); the control-plane role has no room for them under IAM's
10,240-character limit of a role's inline policies (cloud-provider-aws, the EBS CSI driver and
cluster-autoscaler take up to about 9,600 with the longest names), so it gets the AWS managed policy
AmazonEKS_CNI_Policy itself (the same actions, unscoped, as on EKS).
Applied at boot by the first control-plane member, like every CNI; every instance pulls its images at boot
with the instance role's ECR token (`ecr_images`: kubelet has no ECR credential provider), unless a mirror
serves them. Its pod traffic between the nodes' security
groups is in kubeaws.model.flows (cni_flows). Read by kubeaws.addons.DESCRIPTORS.
"""

from __future__ import annotations

from typing import Any

from kubeaws.addons.descriptor import Addon
from kubeaws.addons.policy import ec2, used
from kubeaws.partition import dns_suffix
from kubeaws.spec.models import ClusterSpec

VERSION = "v1.23.0"
NAME = "cni-aws-vpc-cni"
#: The AWS managed policy with the CNI's actions (on the control-plane role: see the module docstring).
MANAGED_POLICY = "AmazonEKS_CNI_Policy"
#: The registry the upstream manifest names (us-west-2's).
UPSTREAM_REGISTRY = "602401143452.dkr.ecr.us-west-2.amazonaws.com"
#: The tag the CNI puts on the ENIs it creates and manages when `CLUSTER_NAME` is set (pkg/awsutils).
CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"
#: An ENI the CNI leaves alone (pkg/ipamd): kubeaws' API ENI of a single control-plane member.
NO_MANAGE_TAG = "node.k8s.amazonaws.com/no_manage"
#: Every tag key the CNI writes on an ENI (pkg/awsutils buildENITags/createENITags; ADDITIONAL_ENI_TAGS is
#: left empty): the only keys its CreateTags may carry.
ENI_TAG_KEYS = ("node.k8s.amazonaws.com/instance_id", "node.k8s.amazonaws.com/createdAt", CLUSTER_TAG,
                "eks:eni:owner")
#: The account of the EKS images' registry in each region whose account is not the default one ("Amazon
#: container image registries" of the EKS user guide).
ACCOUNTS = {
    "af-south-1": "877085696533", "ap-east-1": "800184023465", "ap-east-2": "533267051163",
    "ap-south-2": "900889452093", "ap-southeast-3": "296578399912", "ap-southeast-4": "491585149902",
    "ap-southeast-5": "151610086707", "ap-southeast-6": "333609536671", "ap-southeast-7": "121268973566",
    "ca-west-1": "761377655185", "eu-central-2": "900612956339", "eu-south-1": "590381155156",
    "eu-south-2": "455263428931", "il-central-1": "066635153087", "me-central-1": "759879836304",
    "me-south-1": "558608220178", "mx-central-1": "730335286997",
    "cn-north-1": "918309763551", "cn-northwest-1": "961992271922",
    "us-gov-east-1": "151742754352", "us-gov-west-1": "013241004608",
}
#: The commercial regions that are not opt-in (us-east-1, eu-west-1...) all use this account.
DEFAULT_ACCOUNT = "602401143452"


def registry(region: str) -> str:
    """The EKS images' registry in `region`: `602401143452.dkr.ecr.eu-west-1.amazonaws.com`,
    `918309763551.dkr.ecr.cn-north-1.amazonaws.com.cn`."""
    return f"{ACCOUNTS.get(region, DEFAULT_ACCOUNT)}.dkr.ecr.{region}.{dns_suffix(region)}"


def patch(spec: ClusterSpec, doc: dict[str, Any]) -> bool:
    """The `aws-node` DaemonSet for this cluster: its images from the region's registry, `CLUSTER_NAME` set on
    the `aws-node` container (so that its ENIs carry the cluster's tag). Every other document as shipped."""
    if doc.get("kind") != "DaemonSet" or doc.get("metadata", {}).get("name") != "aws-node":
        return False
    pod = doc["spec"]["template"]["spec"]
    ours = registry(spec.spec.region)
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        image = str(container["image"])
        if image.startswith(UPSTREAM_REGISTRY + "/"):
            container["image"] = ours + image.removeprefix(UPSTREAM_REGISTRY)
        if container["name"] == "aws-node":
            env = [var for var in container.get("env", []) if var.get("name") != "CLUSTER_NAME"]
            container["env"] = [*env, {"name": "CLUSTER_NAME", "value": spec.name}]
    return True


def ecr_images(spec: ClusterSpec) -> list[str]:
    """The CNI's images that every instance pulls at boot with its instance role's ECR token
    (kubeaws.bootstrap): the region's EKS registry is private ECR, and kubelet has no ECR credential provider.
    None with `mirrors.imageRepository` (the mirror serves them) or another CNI."""
    if not ADDON.enabled(spec) or spec.spec.mirrors.image_repository:
        return []
    (ds,) = [d for d in ADDON.documents(spec) if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    return [str(c["image"]) for c in [*pod.get("initContainers", []), *pod["containers"]]]


def statements(cluster: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The AWS managed policy AmazonEKS_CNI_Policy's actions (IPv4), scoped: the ENIs it creates must carry
    the cluster's CNI tag in the create call, those it changes, attaches, detaches or deletes must carry it
    (the CNI tags the instance's own ENIs at start, TagENI), the instances and security groups must be the
    cluster's; it may write only its own tag keys (the tag guards of kubeaws.model.iam keep
    `kubernetes.io/cluster/*` out). Each statement lists every resource type its actions take but one
    (parliament: VpcCniClusterInstances, allowed in tests/test_iam_parliament.py); a condition holds for the
    resources that carry its tag: an instance never carries the CNI's tag, an ENI of the CNI never carries
    `kubernetes.io/cluster/<cluster>`."""
    eni, instance, group = (ec2(kind, partition) for kind in ("network-interface", "instance", "security-group"))
    return [
        {"Sid": "VpcCniDescribe", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeTags"]},
        # The subnet and groups of a new ENI: the instance's own (its primary ENI's), or subnets tagged for the
        # CNI (subnet discovery); the request must tag the ENI for this cluster.
        {"Sid": "VpcCniCreateEnis", "Effect": "Allow", "Action": ["ec2:CreateNetworkInterface"],
         "Resource": [eni, ec2("subnet", partition), group],
         "Condition": {"StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": cluster}}},
        {"Sid": "VpcCniTagEnis", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": [eni],
         "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": list(ENI_TAG_KEYS)}}},
        {"Sid": "VpcCniClusterEnis", "Effect": "Allow", "Resource": [eni, instance],
         "Condition": {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster}}, "Action": [
            "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses", "ec2:AttachNetworkInterface",
            "ec2:DetachNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:ModifyNetworkInterfaceAttribute"]},
        # No ENI here on purpose: tagged for the cluster, kubeaws' own API ENI would be one.
        {"Sid": "VpcCniClusterInstances", "Effect": "Allow", "Resource": [instance, group],
         "Condition": used(cluster), "Action": ["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface",
                                               "ec2:ModifyNetworkInterfaceAttribute"]},
    ]


ADDON = Addon(
    name=NAME, option=None, cni="aws-vpc-cni", order=13, boot=True, version=VERSION,
    vendored=(f"aws-vpc-cni/{VERSION}/aws-k8s-cni.yaml",), patch=patch,
    node_statements=statements, control_plane_managed=(MANAGED_POLICY,),
)
