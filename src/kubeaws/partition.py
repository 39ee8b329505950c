"""AWS partitions: the one place that turns a region into its partition (`aws`, `aws-cn`, `aws-us-gov`) and
builds what differs between them: ARNs (`arn:<partition>:...`), AWS managed-policy ARNs, service principals
and endpoint host names (DNS suffix `amazonaws.com` or `amazonaws.com.cn`).

A leaf (tests/test_architecture.py): every layer may import it, pure, no AWS call. Used by the model builders
(IAM, IRSA, EKS, state bucket policy), the resource kinds that name ARNs (Bucket, KmsKey, OidcProvider), the
EKS renderers (aws-auth, access entries), `kubeaws render` and the EKS token signer.

Sources (docs/eks.md, "Partitions"):
- partitions, their regions and DNS suffixes: botocore's bundled `data/partitions.json` (the same file the
  spec's region check reads); a region botocore does not list falls back to its `regionRegex`.
- service principals: AWS CDK (`aws-cdk-lib/region-info/lib/default.ts`: "Service principals are now
  globally `<SERVICE>.amazonaws.com`", exceptions only for logs, codedeploy, states and elasticmapreduce,
  none of which kubeaws trusts); in aws-cn, EC2 is `ec2.amazonaws.com.cn` as eksctl writes it
  (`pkg/apis/eksctl.io/v1alpha5/partitions.go`; IAM in cn-north-1 refused `ec2.amazonaws.com` when
  kops first ran there, kubernetes/kops#27), and AWS accepts that form there today.
- the IRSA audience stays `sts.amazonaws.com` in every partition: it is what the EKS pod identity webhook
  projects, not an endpoint (eksctl-io/eksctl#1910, terraform-aws-modules/terraform-aws-eks#1704).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

#: The partitions kubeaws supports (the spec accepts only their regions).
SUPPORTED = ("aws", "aws-cn", "aws-us-gov")
#: Service principals that differ from `<service>.amazonaws.com` in a partition (see the module docstring).
PRINCIPALS = {("aws-cn", "ec2"): "ec2.amazonaws.com.cn"}
#: The audience of service-account tokens (IRSA) in every partition.
STS_AUDIENCE = "sts.amazonaws.com"


@functools.lru_cache(maxsize=1)
def _partitions() -> tuple[tuple[str, str, frozenset[str], re.Pattern[str]], ...]:
    """(id, dnsSuffix, regions, regionRegex) of the supported partitions, from botocore's partitions.json."""
    import importlib.util

    found = importlib.util.find_spec("botocore")  # found, not imported: `kubeaws render` makes no AWS SDK import
    assert found is not None and found.origin is not None, "botocore is a dependency of kubeaws"
    data = json.loads((Path(found.origin).parent / "data" / "partitions.json").read_text())
    return tuple((p["id"], p["outputs"]["dnsSuffix"], frozenset(p["regions"]), re.compile(p["regionRegex"]))
                 for p in data["partitions"] if p["id"] in SUPPORTED)


def partition_of(region: str) -> str:
    """`cn-north-1` -> `aws-cn`, `us-gov-west-1` -> `aws-us-gov`, any other region -> `aws`."""
    for pid, _, regions, _ in _partitions():
        if region in regions:
            return pid
    for pid, _, _, regex in _partitions():
        if pid != "aws" and regex.match(region):
            return pid
    return "aws"


def dns_suffix(region: str) -> str:
    """The endpoints' domain in the region's partition: `amazonaws.com.cn` in China, else `amazonaws.com`."""
    pid = partition_of(region)
    return next(suffix for p, suffix, _, _ in _partitions() if p == pid)


def arn(partition: str, service: str, resource: str, region: str = "", account: str = "") -> str:
    """`arn:<partition>:<service>:<region>:<account>:<resource>` (region and account may be empty or `*`)."""
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def role_arn(partition: str, account: str, path_and_name: str) -> str:
    """An IAM role ARN; `path_and_name` is `name` or `/path/name` (`kubeaws/c/c-node` works too)."""
    return arn(partition, "iam", f"role/{path_and_name.lstrip('/')}", account=account)


def managed_policy(partition: str, name: str) -> str:
    """An AWS managed policy: `arn:<partition>:iam::aws:policy/<name>` (`name` may hold a path such as
    `service-role/AmazonEBSCSIDriverPolicy`)."""
    return arn(partition, "iam", f"policy/{name}", account="aws")


def service_principal(service: str, partition: str) -> str:
    """The principal a trust policy names for an AWS service (`ec2`, `eks`, ...) in a partition."""
    return PRINCIPALS.get((partition, service), f"{service}.amazonaws.com")


def endpoint_host(service: str, region: str) -> str:
    """A regional endpoint host: `sts.cn-north-1.amazonaws.com.cn`, `oidc.eks.us-east-1.amazonaws.com`."""
    return f"{service}.{region}.{dns_suffix(region)}"
