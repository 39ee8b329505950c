"""State builder (mode kubeadm): the cluster's state bucket (name from the cluster, account and region),
its bucket policy, the cluster PKI stored in it, and a helper for the small objects kubeaws writes there.

Pure: the bucket name and policy are `Computed` from a `Lookup("sts", "account_id")` and the role ARNs.
Called by the kubeadm model wiring (`model.build`) after `build_iam`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeaws.model.common import Builder
from kubeaws.model.iam import IamRefs, bucket_arn, build_iam
from kubeaws.partition import partition_of
from kubeaws.resources._s3 import state_bucket_name
from kubeaws.resources.base import Computed, Lookup, Ref
from kubeaws.resources.pki import PKI_NAME, PKI_PREFIX
from kubeaws.resources.state_object import STATE_PREFIX

__all__ = ["StateRefs", "bucket_name", "bucket_policy", "build_state", "build_state_and_iam", "state_bucket_name",
           "state_object"]

ACCOUNT = Lookup("sts", "account_id")
PUBLIC_ACCESS_BLOCK = {"block_public_acls": True, "ignore_public_acls": True, "block_public_policy": True,
                       "restrict_public_buckets": True}
NODE_READABLE = ("cluster/*", "join/token")


@dataclass
class StateRefs:
    """The bucket (its name, known at plan time once the account is looked up) and the PKI."""

    bucket: Computed
    bucket_ref: Ref
    pki: Ref


def bucket_name(b: Builder) -> Computed:
    """The state bucket's name, computed once the account ID is looked up."""
    return Computed(state_bucket_name, {"cluster": b.cluster, "account_id": ACCOUNT, "region": b.spec.spec.region},
                    "state bucket name")


def bucket_policy(cluster: str, account_id: str, region: str, control_plane_role_arn: str,
                  node_role_arn: str) -> dict[str, Any]:
    """Deny every principal outside the account; deny the node role anything but reading `cluster/*` and
    `join/token`. The control-plane role, kubeaws' caller and the account's administrators keep what their
    IAM policies give them (an allow-list of principals would lock out every administrator but the one who
    ran kubeaws: only the root user could repair it). The TLS-only Deny is added by the Bucket kind."""
    bucket = bucket_arn(state_bucket_name(cluster, account_id, region), partition_of(region))
    everything = [bucket, f"{bucket}/*"]
    readable = [f"{bucket}/{key}" for key in NODE_READABLE]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyOtherAccounts", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": everything,
         "Condition": {"StringNotEquals": {"aws:PrincipalAccount": account_id}}},
        {"Sid": "NodesReadOnly", "Effect": "Deny", "Principal": {"AWS": node_role_arn},
         "NotAction": ["s3:GetObject"], "Resource": everything},
        {"Sid": "NodesClusterInfoOnly", "Effect": "Deny", "Principal": {"AWS": node_role_arn},
         "Action": ["s3:GetObject"], "NotResource": readable},
        {"Sid": "ControlPlaneAccess", "Effect": "Allow", "Principal": {"AWS": control_plane_role_arn},
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListBucket"],
         "Resource": everything},
    ]}


def build_state(b: Builder, iam: IamRefs) -> StateRefs:
    """The state bucket (private, SSE-S3, versioned, TLS-only) and the cluster PKI inside it."""
    name = bucket_name(b)
    policy = Computed(bucket_policy, {"cluster": b.cluster, "account_id": ACCOUNT, "region": b.spec.spec.region,
                                      "control_plane_role_arn": iam.control_plane_role_arn,
                                      "node_role_arn": iam.node_role_arn}, "state bucket policy")
    bucket = b.owned("Bucket", "state", {
        "name": name, "versioning": True, "encryption": "AES256", "public_access_block": dict(PUBLIC_ACCESS_BLOCK),
        "policy": policy, "tls_only": True})
    pki = b.owned("ClusterPki", PKI_NAME, {"bucket": Ref("Bucket", "state", "name"), "prefix": PKI_PREFIX})
    return StateRefs(bucket=name, bucket_ref=bucket, pki=pki)


def build_state_and_iam(b: Builder) -> tuple[IamRefs, StateRefs]:
    """Both builders in their order: roles first (the bucket policy names them), then the bucket."""
    iam = build_iam(b, bucket_name(b))
    return iam, build_state(b, iam)


def state_object(b: Builder, key: str, content: Any) -> Ref:
    """A StateObject (`content` a str or a Computed) under `cluster/`; its name is its key (kind contract)."""
    if not key.startswith(STATE_PREFIX):
        raise ValueError(f"state objects live under {STATE_PREFIX}: {key!r}")
    return b.owned("StateObject", key, {"bucket": Ref("Bucket", "state", "name"), "key": key, "content": content})
