"""The EKS objects the local emulator keeps itself because moto lacks them: access entries and their access-policy
associations, add-ons, and the updates (DescribeUpdate) of what it changes. In memory, per (account, region,
cluster), behind one lock; answers in AWS's JSON shapes, failures as `EksApiError` with AWS's error code and
HTTP status (ResourceNotFoundException 404, ResourceInUseException 409, InvalidParameterException and
InvalidRequestException 400).

What AWS does that is kept: an access entry needs a cluster in API or API_AND_CONFIG_MAP authentication mode and
an existing IAM principal; node types (EC2_LINUX...) take no Kubernetes groups nor username and get EKS's node
username; access policies associate only with STANDARD entries, with a cluster or namespace scope (associating
again changes the scope); add-ons and versions must exist for the cluster's Kubernetes version (default: the
newest, kubeaws.local.eks_catalogue); a repeated create with the same clientRequestToken returns the first
result, without it a second create is ResourceInUseException; add-ons answer CREATING to CreateAddon and
DELETING to DeleteAddon, then are ACTIVE or gone (nothing runs: there is nothing to wait for); updates answer
InProgress and are Successful when described. Deleting a cluster (`drop_cluster`) deletes its entries, add-ons
and updates.

Used by kubeaws.local.eks_front, which resolves the cluster in moto and passes it as a `ClusterInfo`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeaws.local import eks_catalogue as catalogue

NODE_TYPES = {"EC2_LINUX": "system:node:{{EC2PrivateDNSName}}", "EC2_WINDOWS": "system:node:{{EC2PrivateDNSName}}",
              "EC2": "system:node:{{EC2PrivateDNSName}}", "FARGATE_LINUX": "system:node:{{SessionName}}",
              "HYBRID_LINUX": "system:node:{{SessionName}}", "HYPERPOD_LINUX": "system:node:{{SessionName}}"}
ENTRY_TYPES = ("STANDARD", *NODE_TYPES)
API_MODES = ("API", "API_AND_CONFIG_MAP")
IAM_PRINCIPAL = re.compile(r"arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")


class EksApiError(Exception):
    """An EKS error answer: HTTP status, error code (x-amzn-ErrorType), message and the names it is about."""

    def __init__(self, status: int, code: str, message: str, **about: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.about = status, code, message, about


def not_found(message: str, **about: str) -> EksApiError:
    return EksApiError(404, "ResourceNotFoundException", message, **about)


def invalid(message: str, **about: str) -> EksApiError:
    return EksApiError(400, "InvalidParameterException", message, **about)


@dataclass(frozen=True)
class ClusterInfo:
    """The moto cluster a request is about, as the front read it."""

    account: str
    region: str
    partition: str
    name: str
    version: str
    authentication_mode: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.name)

    def minor(self) -> str:
        return ".".join(str(self.version).split(".")[:2])


def page(items: list[Any], query: Mapping[str, str], default: int = 100) -> tuple[list[Any], str | None]:
    """One page of `items` for maxResults / nextToken (the offset of the next item, as a string)."""
    try:
        size = int(query.get("maxResults") or default)
        start = int(query.get("nextToken") or 0)
    except ValueError:
        raise invalid("maxResults and nextToken must be the values EKS returned") from None
    if not 1 <= size <= 100:
        raise invalid("maxResults must be between 1 and 100")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class EksState:
    """Access entries, access policies, add-ons and updates of every cluster the emulator holds. Thread-safe."""

    def __init__(self, principal_exists: Callable[[str, str], bool] = lambda account, arn: True) -> None:
        #: (account, principal ARN) -> whether the IAM principal exists (the front asks moto's IAM).
        self.principal_exists = principal_exists
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (moto's /moto-api/reset)."""
        with self.lock:
            self.entries: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
            self.policies: dict[tuple[str, str, str], dict[str, dict[str, dict[str, Any]]]] = {}
            self.addons: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
            self.updates: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
            self.tokens: dict[tuple[str, str, str, str], str] = {}
            #: ARN -> (cluster key, "entry" | "addon", name): what TagResource may find here.
            self.arns: dict[str, tuple[tuple[str, str, str], str, str]] = {}

    def drop_cluster(self, key: tuple[str, str, str]) -> None:
        """The cluster was deleted: its access entries, add-ons and updates go with it."""
        with self.lock:
            for table in (self.entries, self.policies, self.addons, self.updates):
                table.pop(key, None)
            self.arns = {arn: v for arn, v in self.arns.items() if v[0] != key}
            self.tokens = {t: v for t, v in self.tokens.items() if t[:3] != key}

    # -- access entries ------------------------------------------------------------------------------
    def _entry(self, c: ClusterInfo, principal: str) -> dict[str, Any]:
        entry = self.entries.get(c.key, {}).get(principal)
        if entry is None:
            raise not_found(f"The specified access entry resource for principal {principal} could not be found "
                            f"in cluster {c.name}.", clusterName=c.name)
        return entry

    def create_access_entry(self, c: ClusterInfo, body: Mapping[str, Any], by_eks: bool = False) -> dict[str, Any]:
        """CreateAccessEntry; `by_eks`: one EKS makes itself (untagged, its principal not checked)."""
        principal = str(body.get("principalArn") or "")
        kind = str(body.get("type") or "STANDARD")
        groups = list(body.get("kubernetesGroups") or [])
        if c.authentication_mode not in API_MODES:
            raise EksApiError(400, "InvalidRequestException", "The cluster's authentication mode must be set to one "
                              f"of [{', '.join(API_MODES)}] to perform this operation.", clusterName=c.name)
        match = IAM_PRINCIPAL.fullmatch(principal)
        if match is None:
            raise invalid(f"The specified principalArn is invalid: {principal!r} is not the ARN of an IAM role or "
                          "user.", clusterName=c.name)
        if kind not in ENTRY_TYPES:
            raise invalid(f"The type {kind} is not one of {', '.join(ENTRY_TYPES)}.", clusterName=c.name)
        if kind != "STANDARD" and (match.group(3) != "role" or groups or body.get("username")):
            raise invalid(f"Access entries of type {kind} must be for an IAM role and take no kubernetesGroups nor "
                          "username.", clusterName=c.name)
        if not by_eks and not self.principal_exists(c.account, principal):
            raise invalid(f"The specified principalArn {principal} could not be found. Check that the IAM "
                          "principal exists.", clusterName=c.name)
        with self.lock:
            token = body.get("clientRequestToken")
            found = self.entries.setdefault(c.key, {}).get(principal)
            if found is not None:
                if token and self.tokens.get((*c.key, f"entry:{token}")) == principal:
                    return {"accessEntry": dict(found)}
                raise EksApiError(409, "ResourceInUseException", "The specified access entry resource is already "
                                  "in use on this cluster.", clusterName=c.name)
            account, name = match.group(2), match.group(4)
            if kind != "STANDARD":
                username = NODE_TYPES[kind]
            elif match.group(3) == "role":
                username = f"arn:{c.partition}:sts::{account}:assumed-role/{name}/{{{{SessionName}}}}"
            else:
                username = principal
            now = time.time()
            arn = (f"arn:{c.partition}:eks:{c.region}:{c.account}:access-entry/{c.name}/{match.group(3)}/{account}/"
                   f"{name}/{uuid.uuid4()}")
            entry = {"clusterName": c.name, "principalArn": principal, "kubernetesGroups": sorted(set(groups)),
                     "accessEntryArn": arn, "createdAt": now, "modifiedAt": now,
                     "tags": {} if by_eks else dict(body.get("tags") or {}),
                     "username": str(body.get("username") or username), "type": kind}
            self.entries[c.key][principal] = entry
            self.arns[arn] = (c.key, "entry", principal)
            if token:
                self.tokens[(*c.key, f"entry:{token}")] = principal
            return {"accessEntry": dict(entry)}

    def describe_access_entry(self, c: ClusterInfo, principal: str) -> dict[str, Any]:
        with self.lock:
            return {"accessEntry": dict(self._entry(c, principal))}

    def list_access_entries(self, c: ClusterInfo, query: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            names = sorted(self.entries.get(c.key, {}))
            policy = query.get("associatedPolicyArn")
            if policy:
                names = [n for n in names if policy in self.policies.get(c.key, {}).get(n, {})]
        items, token = page(names, query)
        return {"accessEntries": items, **({"nextToken": token} if token else {})}

    def update_access_entry(self, c: ClusterInfo, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            entry = self._entry(c, principal)
            if entry["type"] != "STANDARD" and (body.get("kubernetesGroups") or body.get("username")):
                raise invalid(f"Access entries of type {entry['type']} take no kubernetesGroups nor username.",
                              clusterName=c.name)
            if "kubernetesGroups" in body:
                entry["kubernetesGroups"] = sorted(set(body.get("kubernetesGroups") or []))
            if body.get("username"):
                entry["username"] = str(body["username"])
            entry["modifiedAt"] = time.time()
            return {"accessEntry": dict(entry)}

    def bootstrap_creator(self, c: ClusterInfo, principal: str) -> None:
        """The entry EKS makes for the cluster's creator (bootstrapClusterCreatorAdminPermissions, API modes):
        STANDARD, untagged, AmazonEKSClusterAdminPolicy on the whole cluster."""
        match = IAM_PRINCIPAL.fullmatch(principal)
        if match is None or c.authentication_mode not in API_MODES:
            return
        self.create_access_entry(c, {"principalArn": principal}, by_eks=True)
        self.associate_access_policy(c, principal, {
            "policyArn": catalogue.policy_arn(c.partition, "AmazonEKSClusterAdminPolicy"),
            "accessScope": {"type": "cluster"}})

    def delete_access_entry(self, c: ClusterInfo, principal: str) -> dict[str, Any]:
        """Delete the entry and its access-policy associations."""
        with self.lock:
            entry = self._entry(c, principal)
            del self.entries[c.key][principal]
            self.policies.get(c.key, {}).pop(principal, None)
            self.arns.pop(entry["accessEntryArn"], None)
        return {}

    # -- access policies -----------------------------------------------------------------------------
    @staticmethod
    def list_access_policies(partition: str, query: Mapping[str, str]) -> dict[str, Any]:
        items, token = page([{"name": n, "arn": catalogue.policy_arn(partition, n)}
                             for n in catalogue.ACCESS_POLICIES], query)
        return {"accessPolicies": items, **({"nextToken": token} if token else {})}

    def associate_access_policy(self, c: ClusterInfo, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        policy = str(body.get("policyArn") or "")
        scope = dict(body.get("accessScope") or {})
        if policy not in {catalogue.policy_arn(c.partition, n) for n in catalogue.ACCESS_POLICIES}:
            raise invalid(f"The specified policyArn {policy} is not an EKS access policy (ListAccessPolicies).",
                          clusterName=c.name)
        namespaces = list(scope.get("namespaces") or [])
        if scope.get("type") not in ("cluster", "namespace") or (scope.get("type") == "namespace") != bool(namespaces):
            raise invalid("accessScope must be {type: cluster} or {type: namespace, namespaces: [...]}.",
                          clusterName=c.name)
        with self.lock:
            entry = self._entry(c, principal)
            if entry["type"] != "STANDARD":
                raise invalid(f"Access policies can only be associated with access entries of type STANDARD, not "
                              f"{entry['type']}.", clusterName=c.name)
            now = time.time()
            held = self.policies.setdefault(c.key, {}).setdefault(principal, {})
            shown_scope = {"type": scope["type"], "namespaces": sorted(set(namespaces))}
            item = {"policyArn": policy, "accessScope": shown_scope,
                    "associatedAt": held.get(policy, {}).get("associatedAt", now), "modifiedAt": now}
            held[policy] = item
            return {"clusterName": c.name, "principalArn": principal, "associatedAccessPolicy": dict(item)}

    def list_associated_access_policies(self, c: ClusterInfo, principal: str,
                                        query: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            self._entry(c, principal)
            held = self.policies.get(c.key, {}).get(principal, {})
            found = [dict(held[arn]) for arn in sorted(held)]
        items, token = page(found, query)
        return {"clusterName": c.name, "principalArn": principal, "associatedAccessPolicies": items,
                **({"nextToken": token} if token else {})}

    def disassociate_access_policy(self, c: ClusterInfo, principal: str, policy: str) -> dict[str, Any]:
        with self.lock:
            self._entry(c, principal)
            held = self.policies.get(c.key, {}).get(principal, {})
            if held.pop(policy, None) is None:
                raise not_found(f"The access policy {policy} is not associated with the access entry for "
                                f"{principal}.", clusterName=c.name)
        return {}

    # -- add-ons -------------------------------------------------------------------------------------
    def _addon(self, c: ClusterInfo, name: str) -> dict[str, Any]:
        addon = self.addons.get(c.key, {}).get(name)
        if addon is None:
            raise not_found(f"No addon: {name} found in cluster: {c.name}", clusterName=c.name, addonName=name)
        return addon

    @staticmethod
    def _check_role(c: ClusterInfo, role: Any) -> None:
        if role is not None and not (IAM_PRINCIPAL.fullmatch(str(role)) and ":role/" in str(role)):
            raise invalid(f"serviceAccountRoleArn {role!r} is not the ARN of an IAM role.", clusterName=c.name)

    def create_addon(self, c: ClusterInfo, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str(body.get("addonName") or "")
        spec = catalogue.ADDONS.get(name)
        version = body.get("addonVersion") or catalogue.default_version(name, c.minor())
        if spec is None or version is None:
            raise invalid(f"Addon {name} specified is not supported in {c.minor()} kubernetes version",
                          clusterName=c.name, addonName=name)
        if not catalogue.serves(name, str(version), c.minor()):
            raise invalid(f"Addon version specified ({version}) is not supported for {name} on Kubernetes "
                          f"{c.minor()} (DescribeAddonVersions lists the supported ones)", clusterName=c.name,
                          addonName=name)
        self._check_role(c, body.get("serviceAccountRoleArn"))
        with self.lock:
            token = body.get("clientRequestToken")
            found = self.addons.setdefault(c.key, {}).get(name)
            if found is not None:
                if token and self.tokens.get((*c.key, f"addon:{token}")) == name:
                    return {"addon": dict(found)}
                raise EksApiError(409, "ResourceInUseException", "Addon already exists.", clusterName=c.name,
                                  addonName=name)
            now = time.time()
            arn = f"arn:{c.partition}:eks:{c.region}:{c.account}:addon/{c.name}/{name}/{uuid.uuid4()}"
            addon: dict[str, Any] = {
                "addonName": name, "clusterName": c.name, "status": "ACTIVE", "addonVersion": str(version),
                "health": {"issues": []}, "addonArn": arn, "createdAt": now, "modifiedAt": now,
                "tags": dict(body.get("tags") or {}), "owner": spec.owner, "publisher": spec.publisher}
            for key in ("serviceAccountRoleArn", "configurationValues"):
                if body.get(key):
                    addon[key] = body[key]
            self.addons[c.key][name] = addon
            self.arns[arn] = (c.key, "addon", name)
            if token:
                self.tokens[(*c.key, f"addon:{token}")] = name
            return {"addon": {**addon, "status": "CREATING"}}

    def describe_addon(self, c: ClusterInfo, name: str) -> dict[str, Any]:
        with self.lock:
            return {"addon": dict(self._addon(c, name))}

    def list_addons(self, c: ClusterInfo, query: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            names = sorted(self.addons.get(c.key, {}))
        items, token = page(names, query)
        return {"addons": items, **({"nextToken": token} if token else {})}

    def update_addon(self, c: ClusterInfo, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        version = body.get("addonVersion")
        if version and not catalogue.serves(name, str(version), c.minor()):
            raise invalid(f"Addon version specified ({version}) is not supported for {name} on Kubernetes "
                          f"{c.minor()}", clusterName=c.name, addonName=name)
        self._check_role(c, body.get("serviceAccountRoleArn"))
        with self.lock:
            addon = self._addon(c, name)
            params = []
            for key, kind in (("addonVersion", "AddonVersion"), ("serviceAccountRoleArn", "ServiceAccountRoleArn"),
                              ("configurationValues", "ConfigurationValues")):
                if body.get(key):
                    addon[key] = body[key]
                    params.append({"type": kind, "value": str(body[key])})
            if body.get("resolveConflicts"):
                params.append({"type": "ResolveConflicts", "value": str(body["resolveConflicts"])})
            addon["modifiedAt"] = time.time()
            return {"update": self._record(c, "AddonUpdate", params, addonName=name)}

    def delete_addon(self, c: ClusterInfo, name: str) -> dict[str, Any]:
        with self.lock:
            addon = self._addon(c, name)
            del self.addons[c.key][name]
            self.arns.pop(addon["addonArn"], None)
            return {"addon": {**addon, "status": "DELETING"}}

    @staticmethod
    def describe_addon_versions(query: Mapping[str, str], multi: Mapping[str, list[str]]) -> dict[str, Any]:
        """DescribeAddonVersions: filters addonName, kubernetesVersion, types, owners, publishers."""
        minor = query.get("kubernetesVersion")
        minor = ".".join(minor.split(".")[:2]) if minor else None
        found = []
        for spec in sorted(catalogue.ADDONS.values(), key=lambda s: s.name):
            if query.get("addonName") and spec.name != query["addonName"]:
                continue
            if any(multi.get(k) and value not in multi[k] for k, value in
                   (("types", spec.type), ("owners", spec.owner), ("publishers", spec.publisher))):
                continue
            info = catalogue.addon_info(spec, minor)
            if info is not None:
                found.append(info)
        items, token = page(found, query)
        return {"addons": items, **({"nextToken": token} if token else {})}

    # -- updates -------------------------------------------------------------------------------------
    def _record(self, c: ClusterInfo, kind: str, params: list[dict[str, str]], **scope: str) -> dict[str, Any]:
        update_id = str(uuid.uuid4())
        update: dict[str, Any] = {"id": update_id, "status": "InProgress", "type": kind, "params": params,
                                  "createdAt": time.time(), "errors": []}
        self.updates.setdefault(c.key, {})[update_id] = {**update, "status": "Successful", "scope": scope}
        return update

    def record_update(self, c: ClusterInfo, kind: str, params: list[dict[str, str]], **scope: str) -> dict[str, Any]:
        """An update of the cluster or one of its node groups (`nodegroupName=`), made in moto by the front."""
        with self.lock:
            return self._record(c, kind, params, **scope)

    def describe_update(self, c: ClusterInfo, update_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        scope = {k: query[k] for k in ("nodegroupName", "addonName") if query.get(k)}
        with self.lock:
            found = self.updates.get(c.key, {}).get(update_id)
        if found is None or found["scope"] != scope:
            raise not_found(f"No update found for ID: {update_id}", clusterName=c.name)
        return {"update": {k: v for k, v in found.items() if k != "scope"}}

    def list_updates(self, c: ClusterInfo, query: Mapping[str, str]) -> dict[str, Any]:
        scope = {k: query[k] for k in ("nodegroupName", "addonName") if query.get(k)}
        with self.lock:
            found = sorted(self.updates.get(c.key, {}).values(), key=lambda u: u["createdAt"])
        items, token = page([u["id"] for u in found if u["scope"] == scope], query)
        return {"updateIds": items, **({"nextToken": token} if token else {})}

    # -- tags ----------------------------------------------------------------------------------------
    def _tagged(self, arn: str) -> dict[str, Any] | None:
        found = self.arns.get(arn)
        if found is None:
            return None
        key, kind, name = found
        table = self.entries if kind == "entry" else self.addons
        return table.get(key, {}).get(name)

    def holds(self, arn: str) -> bool:
        """Whether `arn` names an access entry or add-on kept here (else moto has it, or nobody)."""
        with self.lock:
            return self._tagged(arn) is not None

    def tag(self, arn: str, tags: Mapping[str, str]) -> dict[str, Any]:
        with self.lock:
            item = self._tagged(arn)
            if item is None:
                raise not_found(f"Resource {arn} was not found")
            item["tags"] = {**item.get("tags", {}), **tags}
        return {}

    def untag(self, arn: str, keys: list[str]) -> dict[str, Any]:
        with self.lock:
            item = self._tagged(arn)
            if item is None:
                raise not_found(f"Resource {arn} was not found")
            item["tags"] = {k: v for k, v in item.get("tags", {}).items() if k not in set(keys)}
        return {}

    def tags_of(self, arn: str) -> dict[str, Any]:
        with self.lock:
            item = self._tagged(arn)
            if item is None:
                raise not_found(f"Resource {arn} was not found")
            return {"tags": dict(item.get("tags", {}))}
