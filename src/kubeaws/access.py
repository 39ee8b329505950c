"""Access to a cluster and its generated artifacts: the admin kubeconfig (a client certificate signed by the
cluster CA read from the state bucket) and `kubeaws render` (every generated file, without touching AWS).

Called by the public API (kubeaws.api) and the CLI commands `kubeconfig` and `render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.spec.models import ClusterSpec

#: Account ID used by `render` when none is given: artifacts are then examples, not deployable as is.
EXAMPLE_ACCOUNT = "123456789012"


@dataclass
class Kubeconfig:
    """An admin kubeconfig and how to reach the API with it."""

    text: str
    server: str
    private: bool
    hint: str = ""


def _get(ctx: AwsContext, bucket: str, key: str) -> bytes:
    try:
        body: Any = ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"):
            raise KubeawsError(f"s3://{bucket}/{key} cannot be read ({error_code(exc)}): has `kubeaws apply` "
                               "created this cluster, with these credentials and region?") from exc
        raise


def admin_kubeconfig(spec: ClusterSpec, ctx: AwsContext, lifetime_hours: float = 24.0) -> Kubeconfig:
    """A kubeconfig for the cluster admin (group system:masters) valid for `lifetime_hours`."""
    from kubeaws import pki
    from kubeaws.model.state import state_bucket_name
    from kubeaws.resources import registry

    if spec.spec.mode != "kubeadm":
        raise KubeawsError("kubeconfig for EKS clusters uses `kubeaws token`; this cluster is not kubeadm")
    bucket = state_bucket_name(spec.metadata.name, ctx.account_id(), spec.spec.region)
    info = json.loads(_get(ctx, bucket, "cluster/cluster.json"))
    ca = _get(ctx, bucket, "pki/ca.crt")
    ca_key = _get(ctx, bucket, "pki/ca.key")
    server = f"https://{info['endpoint']}:{info.get('port', 6443)}"
    text = pki.admin_kubeconfig(spec.metadata.name, server, ca, ca_key, lifetime_hours)
    private = spec.spec.access.api_endpoint == "private"
    hint = ""
    if private:
        bastions = [o for o in registry.get("Instance").list_owned(ctx) if o.logical_key == "Instance/bastion"]
        address = (bastions[0].attrs.get("public_ip") if bastions else None) or "<bastion address>"
        user = "ubuntu" if spec.spec.access.bastion.os.startswith("ubuntu") else "ec2-user"
        hint = (f"The API endpoint {info['endpoint']} is private. Open a tunnel through the bastion:\n"
                f"  ssh -N -L 6443:{info['endpoint']}:{info.get('port', 6443)} {user}@{address}\n"
                f"then use: kubectl --server https://127.0.0.1:6443 --tls-server-name {info['endpoint']} ...")
    return Kubeconfig(text=text, server=server, private=private, hint=hint)


def render_artifacts(spec: ClusterSpec, account_id: str = EXAMPLE_ACCOUNT) -> dict[str, str]:
    """Every generated artifact by relative path: user data per role and group, kubeadm configs, scripts,
    addon manifests, IAM and bucket policies. Pure: no AWS call."""
    from kubeaws import bootstrap
    from kubeaws.model.iam import control_plane_policy, node_policy
    from kubeaws.model.state import bucket_policy, state_bucket_name

    cluster, region = spec.metadata.name, spec.spec.region
    bucket = state_bucket_name(cluster, account_id, region)
    files = dict(bootstrap.artifacts(spec, bucket)) if spec.spec.mode == "kubeadm" else {}
    role = f"arn:aws:iam::{account_id}:role/kubeaws/{cluster}/{cluster}"
    policies = {
        "iam/control-plane-policy.json": control_plane_policy(cluster, bucket),
        "iam/node-policy.json": node_policy(cluster, bucket),
        "s3/state-bucket-policy.json": bucket_policy(cluster, account_id, region, f"{role}-control-plane",
                                                     f"{role}-node"),
    }
    files.update({path: json.dumps(doc, indent=2, sort_keys=True) + "\n" for path, doc in policies.items()})
    return files
