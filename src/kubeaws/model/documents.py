"""The policy documents a cluster puts on AWS, for `kubeaws render`: one source with apply.

The documents are read from the model graph (`model.build`, the same desired resources apply converges) and
passed through the builders the resource kinds use when they send them: the Bucket kind's `policy_document`
(the model's statements plus the TLS-only Deny), the KmsKey kind's `root_policy` when the model sets no key
policy, and the IamRole kind's documents as they are (trust policy and inline policies). What only AWS knows
at apply time is filled in without AWS: the account ID is `account_id`, role ARNs are built from their path
and name (as IAM builds them), an EKS cluster's OIDC issuer is a placeholder.

Called by `kubeaws.access.render_artifacts`; tests/test_render_documents.py checks each document against the
request its kind sends. Pure: no AWS call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeaws.model.graph import Graph
from kubeaws.partition import arn, endpoint_host, partition_of, role_arn
from kubeaws.resources.base import Desired, Lookup, Ref, substitute
from kubeaws.resources.bucket import policy_document
from kubeaws.resources.kms_key import root_policy
from kubeaws.spec.models import ClusterSpec

#: Stand-in for the EKS cluster's OIDC issuer ID, known only once the cluster exists.
ISSUER_ID = "EXAMPLED539D4633E53DE1B71EXAMPLE"


def resolver(graph: Graph, account_id: str, region: str) -> Callable[[Any], Any]:
    """Resolve the Refs and Lookups of policy documents without AWS (see the module docstring)."""

    partition = partition_of(region)
    issuer = f"https://{endpoint_host('oidc.eks', region)}/id/{ISSUER_ID}"

    def resolve(leaf: Ref | Lookup) -> Any:
        if isinstance(leaf, Lookup):
            if (leaf.source, leaf.name) == ("sts", "account_id"):
                return account_id
            return f"<{leaf}>"
        desired = graph[leaf.key]
        if leaf.kind == "IamRole" and leaf.attr == "arn":
            if desired.brought_id:
                return desired.brought_id if desired.brought_id.startswith("arn:") else \
                    role_arn(partition, account_id, desired.brought_id)
            return role_arn(partition, account_id, f"{desired.props['path']}{value(desired.props['name'])}")
        if leaf.kind == "EksCluster" and leaf.attr == "oidc_issuer":
            return issuer
        if leaf.kind == "OidcProvider" and leaf.attr == "arn":
            return arn(partition, "iam", f"oidc-provider/{issuer.removeprefix('https://')}", account=account_id)
        if leaf.attr == "name" and "name" in desired.props:
            return value(desired.props["name"])
        return f"<{leaf}>"

    def value(v: Any) -> Any:
        return substitute(v, resolve)

    return value


def _role_documents(role: Desired, value: Callable[[Any], Any]) -> dict[str, Any]:
    files: dict[str, Any] = {f"iam/{role.name}-trust-policy.json": value(role.props["assume_role_policy"])}
    for name, doc in sorted((value(role.props.get("inline_policies")) or {}).items()):
        suffix = "" if name == f"kubeaws-{role.name}" else f"-{name}"
        files[f"iam/{role.name}{suffix}-policy.json"] = doc
    return files


def policy_documents(spec: ClusterSpec, account_id: str, graph: Graph | None = None) -> dict[str, Any]:
    """Every policy document of the cluster by render path: `iam/<role>-trust-policy.json` and
    `iam/<role>-policy.json` for each role kubeaws creates, `s3/state-bucket-policy.json`,
    `kms/<key>-key-policy.json`."""
    from kubeaws.model import build

    graph = graph if graph is not None else build(spec, kubernetes_objects=False)
    value = resolver(graph, account_id, spec.spec.region)
    files: dict[str, Any] = {}
    for role in graph.of_kind("IamRole"):
        if not role.brought_id:
            files.update(_role_documents(role, value))
    for bucket in graph.of_kind("Bucket"):
        props = value(bucket.props)
        document = policy_document(props["name"], props, partition=partition_of(spec.spec.region))
        if document is not None:
            files[f"s3/{bucket.name}-bucket-policy.json"] = document
    for key in graph.of_kind("KmsKey"):
        if not key.brought_id:
            files[f"kms/{key.name}-key-policy.json"] = value(key.props.get("policy")) or \
                root_policy(account_id, spec.spec.region)
    return files
