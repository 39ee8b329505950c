"""EKS control planes (kind `EksCluster`, docs/eks.md): the cluster named after the kubeaws cluster. id = the
EKS cluster name.

- `list_owned` = ONE DescribeCluster of `ctx.cluster` (the EKS cluster is named after the kubeaws cluster;
  a ListClusters first would add a read and tell nothing more). Not found = nothing.
- create: CreateCluster with tags and a clientRequestToken, then wait ACTIVE (bounded by `CLUSTER_WAIT`); a
  FAILED cluster raises with its health issues. A cluster found CREATING or UPDATING shows as a `state` diff
  whose update only waits; a FAILED one stops the plan (it cannot be repaired, only deleted).
- update: UpdateClusterConfig for logging, endpoint access / public CIDRs, subnets / security groups and
  the authentication mode (forward only), each in its own request, waiting for each update (EKS refuses
  concurrent ones); AssociateEncryptionConfig to enable secrets encryption (never removed nor moved:
  `encryption_key_arn` is refused); UpdateClusterVersion one minor version at a time (a downgrade or a
  jump is refused at plan time, with the upgrade path).
- delete: DeleteCluster (retried while node groups drain), then wait until it is gone.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code, is_in_use
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by
from kubeaws.errors import KubeawsError, OwnershipError
from kubeaws.resources._autoscaling import retry_matching
from kubeaws.resources._eks import (
    CLUSTER_WAIT,
    EksKind,
    delete_call,
    describe,
    mutate,
    wait_gone,
    wait_status,
    wait_update,
)
from kubeaws.resources.base import Desired, Diff, Observed
from kubeaws.resources.registry import register

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
#: Authentication modes in the only order EKS can move through them.
AUTH_MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
ALL_IPV4 = ["0.0.0.0/0"]
WAITING = frozenset({"CREATING", "UPDATING", "PENDING"})
VPC_ACCESS = ("endpoint_public", "endpoint_private", "public_access_cidrs")


class EksVersionError(KubeawsError):
    """A Kubernetes version change EKS cannot make: a downgrade, or more than one minor version at once."""


def minor(version: str) -> tuple[int, int]:
    major, _, rest = str(version).partition(".")
    return int(major), int(rest.split(".")[0] or 0)


def check_version_change(name: str, have: str, want: str) -> None:
    """Refuse a downgrade or a jump over a minor version, explaining the upgrade path."""
    (hmaj, hmin), (wmaj, wmin) = minor(have), minor(want)
    if (wmaj, wmin) < (hmaj, hmin):
        raise EksVersionError(f"EKS cluster {name} runs Kubernetes {have}: it cannot be downgraded to {want}. "
                              f"Put kubernetesVersion back to {have} (or later).")
    if wmaj != hmaj or wmin > hmin + 1:
        path = " -> ".join(f"{hmaj}.{m}" for m in range(hmin, wmin + 1)) if wmaj == hmaj else f"{have} -> {want}"
        raise EksVersionError(f"EKS cluster {name} runs Kubernetes {have}: EKS upgrades one minor version at a "
                              f"time. Set kubernetesVersion to {hmaj}.{hmin + 1}, apply, and repeat ({path}); "
                              "upgrade the nodes and add-ons between steps.")


@register
class EksCluster(EksKind):
    """An EKS control plane; updated in place one EKS update at a time."""

    kind = "EksCluster"
    rank = 45
    modes = frozenset({"eks"})
    refuse_change = frozenset({"name", "role_arn", "encryption_key_arn", "service_cidr"})
    set_fields = frozenset({"subnet_ids", "security_group_ids", "public_access_cidrs", "logging"})
    gone_states = frozenset({"DELETING"})

    def observe(self, c: Mapping[str, Any]) -> Observed:
        vpc = c.get("resourcesVpcConfig") or {}
        logging = [t for entry in (c.get("logging") or {}).get("clusterLogging") or [] if entry.get("enabled")
                   for t in entry.get("types") or []]
        encryption = next((e.get("provider", {}).get("keyArn") for e in c.get("encryptionConfig") or []), None)
        fields = {"name": c["name"], "version": c.get("version"), "role_arn": c.get("roleArn"),
                  "subnet_ids": sorted(vpc.get("subnetIds") or []),
                  "security_group_ids": sorted(vpc.get("securityGroupIds") or []),
                  "endpoint_public": bool(vpc.get("endpointPublicAccess", True)),
                  "endpoint_private": bool(vpc.get("endpointPrivateAccess", False)),
                  "public_access_cidrs": sorted(vpc.get("publicAccessCidrs") or ALL_IPV4),
                  "logging": sorted(set(logging)), "encryption_key_arn": encryption,
                  "authentication_mode": (c.get("accessConfig") or {}).get("authenticationMode") or "CONFIG_MAP",
                  "service_cidr": (c.get("kubernetesNetworkConfig") or {}).get("serviceIpv4Cidr")}
        attrs = {"arn": c.get("arn"), "endpoint": c.get("endpoint"),
                 "certificate_authority": (c.get("certificateAuthority") or {}).get("data"),
                 "oidc_issuer": ((c.get("identity") or {}).get("oidc") or {}).get("issuer"),
                 "cluster_security_group_id": vpc.get("clusterSecurityGroupId"), "vpc_id": vpc.get("vpcId"),
                 "service_cidr": (c.get("kubernetesNetworkConfig") or {}).get("serviceIpv4Cidr"),
                 "platform_version": c.get("platformVersion"), "state": c.get("status"),
                 "health": (c.get("health") or {}).get("issues") or []}
        return Observed(self.kind, c["name"], fields, dict(c.get("tags") or {}), str(c.get("status", "")), attrs)

    def _describe(self, ctx: AwsContext, name: str) -> dict[str, Any] | None:
        return describe(ctx, "describe_cluster", "cluster", name=name)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        found = self._describe(ctx, ctx.cluster)
        return self.owned_only(ctx, [self.observe(found)]) if found else []

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """EKS cluster names are unique per region and account."""
        name = desired.props.get("name")
        found = self._describe(ctx, name) if isinstance(name, str) else None
        return None if found is None or is_owned_by(found.get("tags") or {}, ctx.cluster) else self.observe(found)

    # -- compare -------------------------------------------------------------------------------------
    def canonical(self, key: str, value: Any) -> Any:
        if key == "public_access_cidrs" and not value:
            value = ALL_IPV4  # EKS's default when the endpoint is public
        if key == "authentication_mode" and not value:
            value = "CONFIG_MAP"  # CreateCluster's default
        if key == "logging" and value is None:
            value = []
        return super().canonical(key, value)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """The base diff, plus: public CIDRs ignored while the endpoint is private; enabling encryption is
        `encryption` (an update), changing or removing it `encryption_key_arn` (refused); a version or
        authentication-mode move EKS cannot make raises; a cluster still changing shows as `state`."""
        if actual.state == "FAILED":
            issues = actual.attrs.get("health") or "no health issue reported"
            raise KubeawsError(f"EKS cluster {actual.id} is FAILED ({issues}); a failed cluster cannot be "
                               "repaired: delete it (kubeaws delete, or aws eks delete-cluster) and apply again")
        skip = set() if desired.props.get("endpoint_public", True) else {"public_access_cidrs"}
        changes = super().diff(actual, replace(desired, create_only=desired.create_only | skip))
        if "encryption_key_arn" in changes and not actual.fields.get("encryption_key_arn"):
            changes["encryption"] = changes.pop("encryption_key_arn")
        if "version" in changes and isinstance(changes["version"][1], str) and actual.fields.get("version"):
            check_version_change(actual.id, str(actual.fields["version"]), changes["version"][1])
        if "authentication_mode" in changes and isinstance(changes["authentication_mode"][1], str):
            have, want = self.canonical("authentication_mode", actual.fields.get("authentication_mode")), \
                changes["authentication_mode"][1]
            if want not in AUTH_MODES or AUTH_MODES.index(want) < AUTH_MODES.index(have):
                raise KubeawsError(f"EKS cluster {actual.id} uses authentication mode {have}: EKS only moves "
                                   f"forward ({' -> '.join(AUTH_MODES)}), so it cannot become {want}")
        if actual.state in WAITING:
            changes["state"] = (actual.state, "ACTIVE")
        return changes

    # -- change --------------------------------------------------------------------------------------
    def _wait_active(self, ctx: AwsContext, name: str) -> Observed:
        item = wait_status(ctx, lambda: self._describe(ctx, name), {"ACTIVE"}, {"FAILED"}, CLUSTER_WAIT,
                           f"EKS cluster {name} to become ACTIVE", "CreateCluster")
        return self.observe(item)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        p = desired.props
        name = p["name"]
        vpc: dict[str, Any] = {"subnetIds": sorted(p["subnet_ids"]),
                               "securityGroupIds": sorted(p.get("security_group_ids") or []),
                               "endpointPublicAccess": bool(p.get("endpoint_public", True)),
                               "endpointPrivateAccess": bool(p.get("endpoint_private", False))}
        if vpc["endpointPublicAccess"] and p.get("public_access_cidrs"):
            vpc["publicAccessCidrs"] = sorted(p["public_access_cidrs"])
        params: dict[str, Any] = {"name": name, "roleArn": p["role_arn"], "resourcesVpcConfig": vpc,
                                  "tags": dict(desired.tags), "clientRequestToken": ctx.client_token(desired.key)}
        if p.get("version"):
            params["version"] = str(p["version"])
        if p.get("logging"):
            params["logging"] = {"clusterLogging": [{"types": sorted(p["logging"]), "enabled": True}]}
        if p.get("encryption_key_arn"):
            params["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": p["encryption_key_arn"]}}]
        if p.get("authentication_mode"):
            params["accessConfig"] = {"authenticationMode": p["authentication_mode"]}
        if p.get("service_cidr"):  # the spec's serviceCIDR: nodes derive the cluster DNS address from it
            params["kubernetesNetworkConfig"] = {"serviceIpv4Cidr": p["service_cidr"], "ipFamily": "ipv4"}
        try:
            # IAM is eventually consistent: a role created a moment ago may not be assumable yet.
            retry_matching(ctx, lambda: ctx.call("eks", "create_cluster", **params), is_role_not_ready,
                           f"IAM role {p['role_arn']} to be assumable by EKS")
        except ClientError as exc:
            if not is_in_use(exc):
                raise
            found = self._describe(ctx, name)
            if found is None or not is_owned_by(found.get("tags") or {}, ctx.cluster):
                raise OwnershipError(f"EKS cluster {name} already exists and is not owned by kubeaws cluster "
                                     f"{ctx.cluster!r}: delete it or choose another cluster name") from exc
            if found.get("status") == "DELETING":  # ours, going away: wait, then create again
                wait_gone(ctx, lambda: self._describe(ctx, name), (), CLUSTER_WAIT, f"EKS cluster {name} to be "
                          "deleted", "DeleteCluster")
                return self.create(ctx, desired)
        return self._wait_active(ctx, name)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "state", "version", "logging", "encryption", "authentication_mode",
                            "subnet_ids", "security_group_ids", *VPC_ACCESS}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        p, name = desired.props, actual.id
        current = self._wait_active(ctx, name) if "state" in diff else actual

        def run(operation: str, what: str, **params: Any) -> None:
            answer = mutate(ctx, operation, f"EKS cluster {name} to accept {what}", **params)
            wait_update(ctx, answer.get("update"), name, f"EKS cluster {name} {what}")

        if "logging" in diff:
            want, have = set(p.get("logging") or []), set(current.fields.get("logging") or [])
            entries = [{"types": sorted(want), "enabled": True}] if want else []
            entries += [{"types": sorted(have - want), "enabled": False}] if have - want else []
            run("update_cluster_config", "logging update", name=name, logging={"clusterLogging": entries})
        if set(diff) & set(VPC_ACCESS):
            public = bool(p.get("endpoint_public", True))
            vpc: dict[str, Any] = {"endpointPublicAccess": public,
                                   "endpointPrivateAccess": bool(p.get("endpoint_private", False))}
            if public:
                vpc["publicAccessCidrs"] = sorted(p.get("public_access_cidrs") or ALL_IPV4)
            run("update_cluster_config", "endpoint access update", name=name, resourcesVpcConfig=vpc)
        if {"subnet_ids", "security_group_ids"} & set(diff):
            run("update_cluster_config", "network update", name=name, resourcesVpcConfig={
                "subnetIds": sorted(p["subnet_ids"]), "securityGroupIds": sorted(p.get("security_group_ids") or [])})
        if "authentication_mode" in diff:
            run("update_cluster_config", "authentication mode update", name=name,
                accessConfig={"authenticationMode": p["authentication_mode"]})
        if "encryption" in diff:
            run("associate_encryption_config", "secrets encryption", clusterName=name,
                clientRequestToken=ctx.client_token(f"{desired.key}/encryption"),
                encryptionConfig=[{"resources": ["secrets"], "provider": {"keyArn": p["encryption_key_arn"]}}])
        if "version" in diff:
            check_version_change(name, str(current.fields.get("version")), str(p["version"]))
            run("update_cluster_version", f"upgrade to Kubernetes {p['version']}", name=name,
                version=str(p["version"]), clientRequestToken=ctx.client_token(f"{desired.key}/{p['version']}"))
        if "tags" in diff:
            self.set_tags(ctx, str(current.attrs["arn"]), diff["tags"][1])
        fields = {**current.fields, **{k: p[k] for k in diff if k in p}}
        if "encryption" in diff:
            fields["encryption_key_arn"] = p["encryption_key_arn"]
        return replace(current, fields=fields, tags={**current.tags, **desired.tags}, state="ACTIVE")

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Delete the control plane (retried while node groups or an update finish) and wait until gone."""
        delete_call(ctx, "delete_cluster", f"EKS cluster {actual.id} to be deletable", name=actual.id)
        wait_gone(ctx, lambda: self._describe(ctx, actual.id), (), CLUSTER_WAIT,
                  f"EKS cluster {actual.id} to be deleted", "DeleteCluster")


def is_role_not_ready(exc: ClientError) -> bool:
    """CreateCluster's answer while a new IAM role has not propagated yet."""
    text = str(exc).lower()
    return error_code(exc) == "InvalidParameterException" and "role" in text and "assume" in text
