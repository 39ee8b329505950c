"""Find every kubeaws cluster of an account by its tags, without a spec file (`kubeaws get clusters`, as
`eksctl get cluster` does for eksctl's): name, mode, Kubernetes version, region, node groups, age.

Per region, cheapest first (`clusters_in_region`):
1. ONE paginated Resource Groups Tagging API GetResources filtered by the tag key `kubeaws.io/cluster`:
   every resource kubeaws tagged, of every kind (on AWS the EKS cluster itself too), with its
   `kubeaws.io/resource` tag. Only ARNs of the region count: S3 and IAM ARNs name no region (a state bucket,
   a role), so a cluster is never seen in a region it has nothing in. A resource must be owned (the ownership
   tags of `aws.tags.is_owned_by`): what another tool made, or a brought resource tagged `shared`, is not
   a cluster.
2. ONE paginated DescribeAutoScalingGroups filtered by the same tag key: the groups with their sizes and
   creation times (the tagging API has neither). A region with nothing of kubeaws stops here: two calls.
3. For the clusters found: EKS ListClusters once; for each found name EKS lists, DescribeCluster (version,
   creation, and its `kubeaws.io/cluster` tag: an EKS cluster another tool made under the same name is not
   taken) and its managed node groups (ListNodegroups + DescribeNodegroup each, the owned ones). For the
   others (kubeadm), the version the cluster was last applied at: `kubernetesVersion` of `cluster/cluster.json`
   in its state bucket (ONE GetObject; the bucket's name needs the account: ONE GetCallerIdentity).

Mode: eks when EKS has the cluster (or a resource is of an EKS kind), kubeadm when it has a control-plane
group or a cluster.json; unknown (None) for a cluster that is half made or half deleted. Age: since the EKS
cluster's creation, else its oldest Auto Scaling group's.

`discover` runs regions in parallel on a bounded pool. With several regions (`--all-regions`: DescribeRegions,
the regions enabled for the account), a region that refuses (not enabled, denied by a policy, unreachable) is
skipped with a note instead of failing the command, unless every region refuses; one region asked by name
fails as any command does.

moto (the local emulator, the tests): GetResources does not list EKS clusters; a kubeaws EKS cluster is still
found there through the other resources it owns in the region (VPC, security groups, launch templates).
Called by the CLI (kubeaws.cli.day2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG, is_owned_by, tag_dict
from kubeaws.errors import KubeawsError
from kubeaws.resources._eks import describe
from kubeaws.resources._s3 import state_bucket_name
from kubeaws.resources.state_object import CLUSTER_INFO, json_version

#: AWS error codes of a region that cannot be read with these credentials (not enabled for the account,
#: denied by an SCP or a policy): with several regions, it is skipped with a note.
REGION_REFUSED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure",
                            "UnrecognizedClientException", "InvalidClientTokenId", "OptInRequired",
                            "SubscriptionRequiredException"})
ROLE_TAG = "kubeaws.io/role"
NODE_GROUP_TAG = "kubeaws.io/node-group"
EKS_KINDS = frozenset({"EksCluster", "EksNodegroup", "EksAddon", "AccessEntry", "OidcProvider"})
MAX_WORKERS = 8


@dataclass
class Group:
    """One node group as AWS has it."""

    name: str  #: the spec's `nodeGroups[].name`
    aws_name: str  #: the Auto Scaling group's or managed node group's name
    type: str  #: self-managed | managed
    desired: int | None = None
    min: int | None = None
    max: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "awsName": self.aws_name, "type": self.type, "desired": self.desired,
                "min": self.min, "max": self.max}


@dataclass
class FoundCluster:
    """A kubeaws cluster found in a region."""

    name: str
    region: str
    mode: str | None = None
    version: str | None = None
    control_plane: int = 0  #: kubeadm: the control-plane members' groups
    groups: list[Group] = field(default_factory=list)
    created: dt.datetime | None = None

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {"name": self.name, "region": self.region, "mode": self.mode, "kubernetesVersion": self.version,
                "controlPlane": self.control_plane or None, "groups": [g.to_dict() for g in self.groups],
                "created": self.created.isoformat() if self.created else None, "age": age(self.created, now)}


@dataclass
class Discovery:
    """The clusters found (by region, then name), the regions read, and those skipped with the reason."""

    clusters: list[FoundCluster] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {"clusters": [c.to_dict(now) for c in self.clusters], "regions": list(self.regions),
                "skippedRegions": [{"region": r, "reason": why} for r, why in sorted(self.skipped.items())]}


def age(created: dt.datetime | None, now: dt.datetime) -> str | None:
    """`45s`, `12m`, `5h`, `3d` (kubectl's style, one unit); None when unknown."""
    if created is None:
        return None
    seconds = max(0, int((now - created).total_seconds()))
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def _aware(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _group_name(tags: Mapping[str, str], aws_name: str) -> str:
    """The spec's group name: the `kubeaws.io/node-group` tag, else from `kubeaws.io/resource`."""
    if tags.get(NODE_GROUP_TAG):
        return tags[NODE_GROUP_TAG]
    logical = tags.get(RESOURCE_TAG, "").split("/", 1)[-1]
    return logical.removeprefix("ng-") or aws_name


def _tagged(ctx: AwsContext) -> dict[str, set[str]]:
    """Cluster name -> kinds of its owned resources in the context's region (GetResources)."""
    found: dict[str, set[str]] = {}
    items = ctx.paginate("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                         TagFilters=[{"Key": CLUSTER_TAG}], ResourcesPerPage=100)
    for item in items:
        parts = str(item.get("ResourceARN", "")).split(":")
        if len(parts) < 6 or parts[3] != ctx.region:
            continue
        tags = tag_dict(item.get("Tags"))
        name = tags.get(CLUSTER_TAG)
        if name and is_owned_by(tags, name):
            found.setdefault(name, set()).add(tags.get(RESOURCE_TAG, "").split("/", 1)[0])
    return found


def clusters_in_region(ctx: AwsContext) -> list[FoundCluster]:
    """Every kubeaws cluster with something owned in the context's region (see the module doc), by name."""
    kinds = _tagged(ctx)
    asgs = ctx.paginate("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                        Filters=[{"Name": "tag-key", "Values": [CLUSTER_TAG]}], MaxRecords=100)
    clusters: dict[str, FoundCluster] = {}

    def cluster(name: str) -> FoundCluster:
        return clusters.setdefault(name, FoundCluster(name, ctx.region))

    for name in kinds:
        cluster(name)
    for g in asgs:
        tags = tag_dict(g.get("Tags"))
        owner = tags.get(CLUSTER_TAG)
        if not owner or not is_owned_by(tags, owner) or g.get("Status") == "Delete in progress":
            continue
        found = cluster(owner)
        created = _aware(g.get("CreatedTime"))
        if created and (found.created is None or created < found.created):
            found.created = created
        if tags.get(ROLE_TAG) == "control-plane":
            found.control_plane += 1
            found.mode = "kubeadm"
            continue
        aws_name = g["AutoScalingGroupName"]
        found.groups.append(Group(_group_name(tags, aws_name), aws_name, "self-managed", g.get("DesiredCapacity"),
                                  g.get("MinSize"), g.get("MaxSize")))
    if not clusters:
        return []
    eks_names = set(ctx.paginate("eks", "list_clusters", "clusters")) & set(clusters)
    for name, found in clusters.items():
        if name in eks_names and _read_eks(ctx, found):
            continue
        if EKS_KINDS & kinds.get(name, set()):
            found.mode = "eks"
            continue
        version = _applied_version(ctx, name)
        if version:
            found.mode, found.version = "kubeadm", version
    for found in clusters.values():
        found.groups.sort(key=lambda g: g.name)
    return [clusters[name] for name in sorted(clusters)]


def _read_eks(ctx: AwsContext, found: FoundCluster) -> bool:
    """Version, creation and managed node groups of the EKS cluster of that name, when it is the kubeaws
    cluster's (its tags); False when it is not."""
    eks = describe(ctx, "describe_cluster", "cluster", name=found.name)
    if eks is None or not is_owned_by(eks.get("tags") or {}, found.name):
        return False
    found.mode, found.version = "eks", eks.get("version")
    found.created = _aware(eks.get("createdAt")) or found.created
    for ng_name in ctx.paginate("eks", "list_nodegroups", "nodegroups", clusterName=found.name):
        ng = describe(ctx, "describe_nodegroup", "nodegroup", clusterName=found.name, nodegroupName=ng_name)
        if ng is None or not is_owned_by(ng.get("tags") or {}, found.name):
            continue
        scaling = ng.get("scalingConfig") or {}
        found.groups.append(Group(_group_name(ng.get("tags") or {}, ng_name), ng_name, "managed",
                                  scaling.get("desiredSize"), scaling.get("minSize"), scaling.get("maxSize")))
    return True


def _applied_version(ctx: AwsContext, cluster: str) -> str | None:
    """`kubernetesVersion` of the cluster's cluster.json (kubeadm), None when there is none."""
    from botocore.exceptions import ClientError

    from kubeaws.aws.errors import error_code

    bucket = state_bucket_name(cluster, ctx.account_id(), ctx.region)
    try:
        body = ctx.call("s3", "get_object", Bucket=bucket, Key=CLUSTER_INFO)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "NoSuchBucket", "404", "AccessDenied"):
            return None
        raise
    return json_version(body)


def enabled_regions(ctx: AwsContext) -> list[str]:
    """The regions enabled for the account (DescribeRegions without AllRegions: opt-in regions not opted
    into are left out), sorted."""
    answer = ctx.call("ec2", "describe_regions")
    return sorted(str(r["RegionName"]) for r in answer.get("Regions", []))


def refusal(exc: BaseException) -> str | None:
    """Why a region cannot be read, when `exc` says so (the region is then skipped); None for other errors."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from kubeaws.aws.errors import error_code

    if isinstance(exc, ClientError) and error_code(exc) in REGION_REFUSED:
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        return f"{error_code(exc)}" + (f": {message}" if message else "")
    if isinstance(exc, EndpointConnectionError):
        return f"unreachable: {exc}"
    return None


def discover(regions: list[str], connect: Callable[[str], AwsContext], *,
             workers: int = MAX_WORKERS) -> Discovery:
    """The kubeaws clusters of `regions` (`connect(region)` gives each region's context), regions in
    parallel (at most `workers` at once). With several regions, one that refuses is skipped (`skipped`)
    unless all do."""
    result = Discovery(regions=list(regions))
    if not regions:
        return result

    def one(region: str) -> list[FoundCluster]:
        return clusters_in_region(connect(region))

    errors: dict[str, BaseException] = {}
    found: dict[str, list[FoundCluster]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions)))) as pool:
        futures = {region: pool.submit(one, region) for region in regions}
        for region, future in futures.items():
            try:
                found[region] = future.result()
            except Exception as exc:
                errors[region] = exc
    for region in regions:
        if region not in errors:
            continue
        reason = refusal(errors[region])
        if reason is None or len(regions) == 1:
            raise errors[region]
        result.skipped[region] = reason
    if len(result.skipped) == len(regions):
        first = regions[0]
        raise KubeawsError(f"no region could be read (e.g. {first}: {result.skipped[first]}); check the "
                           "credentials (`aws sts get-caller-identity`)") from errors[first]
    result.clusters = [c for region in regions for c in found.get(region, [])]
    return result
