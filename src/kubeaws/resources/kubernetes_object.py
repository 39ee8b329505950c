"""Kubernetes objects kubeaws keeps in a cluster (kind `KubernetesObject`): every addon's objects (kubeadm and
EKS: kubeaws.model.addon_objects), the EKS `kube-system/aws-auth` ConfigMap. One resource = one object; name =
`<kind>/<namespace>/<name>` lowercased (`<kind>/<name>` for cluster-scoped types), e.g.
`configmap/kube-system/aws-auth`.

Props: `cluster_name` (the cluster) and `manifest` (one object as a dict; apiVersion/kind among
`kube_client.TYPES`). The object carries the labels `app.kubernetes.io/managed-by: kubeaws` and
`kubeaws.io/cluster: <cluster>` (the model puts them; `owned_manifest` adds them, and create/update add them
again if missing), which is how `list_owned` finds it again.

- Connection: the command's `ctx.kube` (kubeaws.reach.KubeReach, set by kubeaws.api for plan and apply: the
  admin credentials, through the bastion tunnel when the endpoint is private). Without one (delete, status),
  an EKS cluster is reached by DescribeCluster (endpoint + base64 CA) and an `eks_auth.eks_token` bearer
  token signed with the context's profile, and a kubeadm cluster not at all: its objects go with its
  instances.
- `list_owned`: one Kubernetes GET per type in `TYPES` with `labelSelector=kubeaws.io/cluster=<cluster>`
  (`list_reads` = 1: the DescribeCluster of the fallback; the Kubernetes lists are the API server's). A type
  the server does not serve (a custom resource whose CRD is not there) lists as empty. No cluster, an API
  that does not answer now (plan: `ctx.kube.problem` says why, kubeaws.api warns), a cluster without a
  usable endpoint (CREATING, DELETING, FAILED), or a local emulator: nothing.
- `fields.manifest`: the object without `status`, `metadata` cut to name/namespace/labels/annotations. `diff`
  asks whether the desired manifest is contained in it (every desired key present with an equal value,
  recursively; lists element-wise), since the API server adds defaults (a Deployment's strategy, a
  Service's clusterIP). Limitation: a key removed from the desired manifest shows no diff (server-side apply
  would drop it at the next apply of the object for another reason).
- create / update: server-side apply (field manager `kubeaws`, force: kubeaws takes over the fields of an
  object someone else made, e.g. the aws-auth EKS writes for managed node groups, or what the first
  control-plane member applied at boot with the same field manager). A new cluster's API is waited for
  (`ctx.kube.client(wait=True)`); a CustomResourceDefinition is waited for until it is Established, so that
  the custom resources that depend on it (model.addon_objects) can be applied. delete: DELETE (404 = gone; a
  missing cluster = gone with it).

Local emulator: nothing boots and EKS is metadata only, so no Kubernetes API is there (`served` false: for
kubeadm `ctx.capabilities.boots_instances`, for EKS `kubernetes_api_behind_eks`, or `ctx.kube.possible`).
The kind is `cloud_only`: the plan leaves these objects out there and says so in a note (engine.plan).
Called anyway, create/update refuse with that reason, delete does nothing (there is nothing to delete) and
`list_owned` finds nothing.

Called by the engine through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeaws.aws.retry import wait_until
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.eks_auth import eks_token
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeClient
from kubeaws.kube_types import TYPES, object_path, type_of
from kubeaws.resources._eks import describe
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown
from kubeaws.resources.registry import register

KIND = "KubernetesObject"
MANAGED_BY = "app.kubernetes.io/managed-by"
METADATA_KEYS = ("name", "namespace", "labels", "annotations")
#: Cluster states whose API server may be unreachable or going away: nothing to list there.
UNUSABLE = frozenset({"CREATING", "DELETING", "FAILED"})
#: How long a new CustomResourceDefinition may take to be Established (the API server's controller names it).
ESTABLISHED_SECONDS = 120.0
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def owned_manifest(cluster: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `manifest` with the ownership labels (managed-by kubeaws, kubeaws.io/cluster) added."""
    meta = dict(manifest.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: "kubeaws", CLUSTER_TAG: cluster}
    return {**manifest, "metadata": meta}


def object_name(manifest: Mapping[str, Any]) -> str:
    """The resource name: `<kind>/<namespace>/<name>` (namespace "default" if unset) or `<kind>/<name>` for a
    cluster-scoped type, lowercased."""
    kind = str(manifest.get("kind", ""))
    _, namespaced = type_of(str(manifest.get("apiVersion", "")), kind)
    meta = manifest.get("metadata") or {}
    parts = [kind, str(meta.get("namespace") or "default")] if namespaced else [kind]
    return "/".join([*parts, str(meta.get("name", ""))]).lower()


def normalized(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as kubeaws compares it: no status, metadata cut to name/namespace/labels/annotations."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in METADATA_KEYS if meta.get(k)}
    return {**{k: v for k, v in obj.items() if k not in ("status", "metadata")}, "metadata": kept}


def contains(have: Any, want: Any) -> bool:
    """Whether `want` is contained in `have`: dict keys (None-valued ones skipped) recursively, lists of the
    same length element-wise, other values equal."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and contains(have[k], v) for k, v in want.items() if v is not None)
    if isinstance(want, list | tuple):
        return isinstance(have, list | tuple) and len(have) == len(want) and all(
            contains(h, w) for h, w in zip(have, want, strict=True))
    return bool(have == want)


def observe(cluster: str, obj: Mapping[str, Any]) -> Observed:
    """An Observed for one object as the API server (or, on the emulator, the desired manifest) has it."""
    manifest = normalized(obj)
    name = object_name(manifest)
    labels = manifest["metadata"].get("labels") or {}
    meta = obj.get("metadata") or {}
    tags = {CLUSTER_TAG: str(labels.get(CLUSTER_TAG, cluster)), RESOURCE_TAG: f"{KIND}/{name}"}
    attrs = {"path": object_path(manifest), "uid": meta.get("uid"), "resource_version": meta.get("resourceVersion")}
    return Observed(KIND, name, {"cluster_name": cluster, "manifest": manifest}, tags, "", attrs)


def connect(ctx: AwsContext, cluster: str, wait: bool = False) -> KubeClient | None:
    """A client for the cluster's API server: the command's `ctx.kube` (waiting for a new cluster's API with
    `wait`), else an EKS cluster's by DescribeCluster (the token signed locally with the context's profile).
    None when the cluster does not exist, has no usable endpoint (yet), or is on a local emulator."""
    if ctx.kube is not None:
        client: KubeClient | None = ctx.kube.client(wait=wait)
        return client
    found = describe(ctx, "describe_cluster", "cluster", name=cluster)
    if found is None or not ctx.capabilities.kubernetes_api_behind_eks or found.get("status") in UNUSABLE:
        return None
    endpoint = found.get("endpoint")
    ca = (found.get("certificateAuthority") or {}).get("data")
    if not endpoint or not ca:
        return None
    token = str(eks_token(cluster, ctx.region, profile=ctx.settings.profile)["status"]["token"])
    return KubeClient(str(endpoint), str(ca), token, ctx.policy)


@register
class KubernetesObject(Kind):
    """One Kubernetes object in an EKS cluster, server-side applied by kubeaws."""

    kind = KIND
    service = "eks"
    rank = 80
    modes = frozenset({"eks", "kubeadm"})
    taggable = False
    cloud_only = True
    immutable = frozenset({"cluster_name"})
    #: DescribeCluster (the AWS read); the Kubernetes lists (one per managed type) are the API server's.
    list_reads = 1

    def served(self, ctx: AwsContext) -> bool:
        """An API can be behind the endpoint: the command's `ctx.kube` says; without one, EKS's capability."""
        return ctx.kube.possible if ctx.kube is not None else ctx.capabilities.kubernetes_api_behind_eks

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        if not self.served(ctx):
            return []
        client = connect(ctx, ctx.cluster)
        if client is None:
            return []
        selector = f"{CLUSTER_TAG}={ctx.cluster}"
        return [observe(ctx.cluster, obj) for api_version, kind in TYPES
                for obj in client.list_objects(api_version, kind, selector)]

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """`cluster_name` compared as usual; `manifest` changed when the desired one (with the ownership
        labels) is not contained in the found one."""
        changes: Diff = {}
        cluster = desired.props.get("cluster_name")
        if contains_unknown(cluster) or cluster != actual.fields.get("cluster_name"):
            changes["cluster_name"] = (actual.fields.get("cluster_name"), cluster)
        want = desired.props.get("manifest")
        have = actual.fields.get("manifest")
        if contains_unknown(want) or not isinstance(want, Mapping) or not isinstance(cluster, str):
            changes["manifest"] = (have, want)
        elif not contains(have, owned_manifest(cluster, want)):
            changes["manifest"] = (have, owned_manifest(cluster, want))
        return changes

    def _apply(self, ctx: AwsContext, desired: Desired) -> Observed:
        cluster = str(desired.props["cluster_name"])
        manifest = owned_manifest(cluster, desired.props["manifest"])
        if object_name(manifest) != desired.name:
            raise KubeawsError(f"{desired.key}: its manifest names {object_name(manifest)}; the resource name "
                               "must be <kind>/<namespace>/<name> of the object")
        if not self.served(ctx):  # nothing boots, EKS metadata only: no API server to apply to
            raise KubeawsError(f"{desired.key}: the local emulator serves no Kubernetes API; "
                               "Kubernetes objects are applied on AWS only (the plan leaves them out here)")
        client = connect(ctx, cluster, wait=True)
        if client is None:
            why = (ctx.kube.problem if ctx.kube is not None else None) or \
                "it does not exist or its API endpoint is not available (status CREATING, DELETING or FAILED)"
            raise KubeawsError(f"{desired.key}: cluster {cluster} cannot be reached: {why}")
        applied = client.apply(manifest)
        if (manifest.get("apiVersion"), manifest.get("kind")) == CRD:
            applied = established(client, applied, ctx)
        return observe(cluster, applied)

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        """Server-side apply the object (also takes over an existing object of the same name)."""
        return self._apply(ctx, desired)

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        """Server-side apply again: the server merges the change."""
        rest = set(diff) - {"manifest"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        return self._apply(ctx, desired)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """DELETE the object (background propagation); already gone, or the cluster gone, is fine."""
        if not self.served(ctx):
            return
        client = connect(ctx, str(actual.fields.get("cluster_name") or ctx.cluster))
        if client is None:
            return  # no cluster (or it is being deleted): its objects go with it
        client.delete(str(actual.attrs.get("path") or object_path(actual.fields["manifest"])))


def established(client: KubeClient, crd: Mapping[str, Any], ctx: AwsContext) -> dict[str, Any]:
    """The CustomResourceDefinition once its Established condition is True (its custom resources can then be
    applied), as the API server has it; KubeawsError after ESTABLISHED_SECONDS."""
    path = object_path(crd)

    def check() -> dict[str, Any] | None:
        found = client.get(path)
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        ok = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
        return found if ok and found is not None else None

    return wait_until(check, ESTABLISHED_SECONDS, f"CustomResourceDefinition {crd['metadata']['name']} to be "
                      "Established", ctx.policy)
