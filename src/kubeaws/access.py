"""Access to a cluster and its generated artifacts: the admin kubeconfig (kubeadm: a client certificate signed
by the cluster CA read from the state bucket; EKS: the endpoint and CA from DescribeCluster, with a user that
runs `kubeaws token`) and `kubeaws render` (every generated file, without touching AWS).

Called by the public API (kubeaws.api) and the CLI commands `kubeconfig` and `render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubeaws.aws.retry import error_code
from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.partition import managed_policy, partition_of, role_arn
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
    from botocore.exceptions import ClientError
    try:
        body: Any = ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"):
            raise KubeawsError(f"s3://{bucket}/{key} cannot be read ({error_code(exc)}): has `kubeaws apply` "
                               "created this cluster, with these credentials and region?") from exc
        raise


def api_server(spec: ClusterSpec, ctx: AwsContext) -> str | None:
    """The kubeadm cluster's API server URL as its first control-plane member recorded it (cluster.json in
    the state bucket), or None when there is no record yet (not applied, or still booting). For `status`."""
    from kubeaws.model.state import state_bucket_name

    bucket = state_bucket_name(spec.metadata.name, ctx.account_id(), spec.spec.region)
    try:
        info = json.loads(_get(ctx, bucket, "cluster/cluster.json"))
    except KubeawsError:
        return None
    return f"https://{info['endpoint']}:{info.get('port', 6443)}"


def _bastion_address(spec: ClusterSpec, ctx: AwsContext) -> tuple[str, str]:
    """(ssh user, public address) of the cluster's bastion; a placeholder address when there is none."""
    from kubeaws.resources import registry

    bastions = [o for o in registry.get("Instance").list_owned(ctx) if o.logical_key == "Instance/bastion"]
    address = (bastions[0].attrs.get("public_ip") if bastions else None) or "<bastion address>"
    return ("ubuntu" if spec.spec.access.bastion.os.startswith("ubuntu") else "ec2-user"), address


def _tunnel_hint(spec: ClusterSpec, ctx: AwsContext, host: str, port: int, local: int) -> str:
    user, address = _bastion_address(spec, ctx)
    return (f"The API endpoint {host} is private, reached through the bastion: `kubeaws tunnel -f SPEC` opens a "
            "tunnel and prints the KUBECONFIG to use (`kubeaws kubeconfig -f SPEC --tunnel` writes a context "
            "through it). By hand:\n"
            f"  ssh -N -L {local}:{host}:{port} {user}@{address}\n"
            f"then use: kubectl --server https://127.0.0.1:{local} --tls-server-name {host} ...")


def eks_admin_kubeconfig(spec: ClusterSpec, ctx: AwsContext) -> Kubeconfig:
    """The kubeconfig of an EKS cluster: endpoint and CA from DescribeCluster, user `kubeaws token`."""
    from botocore.exceptions import ClientError

    from kubeaws.eks_auth import eks_kubeconfig

    name = spec.metadata.name
    try:
        cluster = ctx.call("eks", "describe_cluster", name=name)["cluster"]
    except ClientError as exc:
        if error_code(exc) in ("ResourceNotFoundException", "NotFoundException", "404"):
            raise KubeawsError(f"EKS cluster {name} does not exist in {ctx.region}: run `kubeaws apply` first "
                               "(with these credentials and region)") from exc
        raise
    endpoint = cluster.get("endpoint") or ""
    ca = (cluster.get("certificateAuthority") or {}).get("data") or ""
    if not endpoint or not ca:
        raise KubeawsError(f"EKS cluster {name} has no endpoint or CA yet (status {cluster.get('status')}): "
                           "wait until `kubeaws apply` has finished")
    text = eks_kubeconfig(name, ctx.region, endpoint, ca, profile=ctx.settings.profile)
    vpc = cluster.get("resourcesVpcConfig") or {}
    private = not vpc.get("endpointPublicAccess", False)
    hint = ""
    if private:
        host = urlsplit(endpoint).netloc.rsplit(":", 1)[0] or endpoint
        hint = (_tunnel_hint(spec, ctx, host, 443, 8443)
                + "\nor set `access.apiEndpoint: public` (with adminCIDRs) and apply again.")
    return Kubeconfig(text=text, server=endpoint, private=private, hint=hint)


def admin_kubeconfig(spec: ClusterSpec, ctx: AwsContext, lifetime_hours: float = 24.0) -> Kubeconfig:
    """A kubeconfig for the cluster admin. kubeadm: a client certificate (group system:masters) valid for
    `lifetime_hours`; EKS: `eks_admin_kubeconfig` (the token is short-lived; `lifetime_hours` is unused)."""
    from kubeaws import pki
    from kubeaws.model.state import state_bucket_name

    if spec.spec.mode == "eks":
        return eks_admin_kubeconfig(spec, ctx)
    bucket = state_bucket_name(spec.metadata.name, ctx.account_id(), spec.spec.region)
    info = json.loads(_get(ctx, bucket, "cluster/cluster.json"))
    ca = _get(ctx, bucket, "pki/ca.crt")
    ca_key = _get(ctx, bucket, "pki/ca.key")
    server = f"https://{info['endpoint']}:{info.get('port', 6443)}"
    text = pki.admin_kubeconfig(spec.metadata.name, server, ca, ca_key, lifetime_hours)
    private = spec.spec.access.api_endpoint == "private"
    hint = _tunnel_hint(spec, ctx, info["endpoint"], info.get("port", 6443), 6443) if private else ""
    return Kubeconfig(text=text, server=server, private=private, hint=hint)


def _eks_render(spec: ClusterSpec, account_id: str) -> dict[str, Any]:
    """EKS files for `render`: user data per self-managed group, aws-auth / access-entry plan (placeholder
    endpoint and CA), and the trust policy + managed policies of the roles kubeaws creates."""
    from kubeaws.bootstrap.eks import eks_artifacts
    from kubeaws.model import maxpods
    from kubeaws.model.eks import cluster_policies, node_policies, trust

    files: dict[str, Any] = dict(eks_artifacts(spec, max_pods=lambda g: maxpods.effective_max_pods(spec, g),
                                               account_id=account_id))
    iam = spec.spec.iam
    partition = partition_of(spec.spec.region)
    roles = {"eks-cluster": ("eks", cluster_policies(partition), iam.control_plane_role),
             "node": ("ec2", node_policies(partition), iam.node_role)}
    for logical, (service, managed, brought) in roles.items():
        if not brought:
            files[f"iam/{logical}-role.json"] = {
                "roleName": f"{spec.metadata.name}-{logical}", "path": f"/kubeaws/{spec.metadata.name}/",
                "assumeRolePolicyDocument": trust(service, partition), "managedPolicyArns": sorted(managed)}
    files.update(_eks_addons(spec, account_id))
    return files


def _eks_addons(spec: ClusterSpec, account_id: str) -> dict[str, Any]:
    """The EKS add-ons kubeaws installs (with their IRSA roles), the IRSA roles' permissions, and the
    objects of the addons without an EKS add-on, applied through the Kubernetes API (from the descriptors)."""
    from kubeaws.addons import enabled
    from kubeaws.model.addon_objects import addon_objects
    from kubeaws.model.eks import CORE_ADDONS

    cluster = spec.metadata.name
    partition = partition_of(spec.spec.region)
    role = role_arn(partition, account_id, f"kubeaws/{cluster}/{cluster}")
    addons: list[dict[str, Any]] = [{"addonName": name, "addonVersion": "EKS default for the cluster version"}
                                    for name in CORE_ADDONS]
    files: dict[str, Any] = {}
    for addon in enabled(spec):
        irsa = addon.irsa
        if irsa is not None:
            files[f"iam/{addon.name}-irsa-role.json"] = {
                **({"managedPolicyArns": [managed_policy(partition, n) for n in irsa.managed]} if irsa.managed else {}),
                **({"policy": f"iam/{addon.name}-policy.json"} if irsa.policy is not None else {}),
                "serviceAccount": f"{irsa.namespace}/{irsa.service_account}"}
        if addon.eks_addon is not None:
            addons.append({"addonName": addon.eks_addon,
                           **({"serviceAccountRoleArn": f"{role}-{addon.name}"} if irsa is not None else {})})
        else:
            docs = addon_objects(spec, addon, f"{role}-{addon.name}" if irsa is not None else None)
            files[f"addons/{addon.name}.yaml"] = yaml.safe_dump_all(docs, sort_keys=False)
    files["addons/eks-addons.json"] = {"addons": addons}
    return files


def render_artifacts(spec: ClusterSpec, account_id: str = EXAMPLE_ACCOUNT) -> dict[str, str]:
    """Every generated artifact by relative path. kubeadm: user data per role and group, kubeadm configs,
    scripts, addon manifests; EKS: `_eks_render`; both: every policy document (`policy_documents`).
    Pure: no AWS call, so the instance types come from the bundled table alone (`spec.resolve`: a type newer
    than the table is refused, saying that plan and apply ask AWS for it)."""
    from kubeaws import bootstrap
    from kubeaws.model.documents import policy_documents
    from kubeaws.model.state import state_bucket_name
    from kubeaws.spec.resolve import resolve

    spec = resolve(spec, spec.instance_type_facts)

    if spec.spec.mode == "eks":
        files: dict[str, Any] = _eks_render(spec, account_id)
    else:
        bucket = state_bucket_name(spec.metadata.name, account_id, spec.spec.region)
        files = dict(bootstrap.artifacts(spec, bucket))
    # The documents apply sends, from the model (kubeaws.model.documents): the roles' trust and inline
    # policies, the state bucket's policy (with its TLS-only Deny), the KMS key policy.
    files.update(policy_documents(spec, account_id))
    return {path: doc if isinstance(doc, str) else json.dumps(doc, indent=2, sort_keys=True) + "\n"
            for path, doc in files.items()}
