"""Answers to AWS requests that never leave the test process, for what moto lacks or for injected faults.

- `answer` / `error`: what a botocore `before-call` handler returns to answer a request itself: botocore then
  skips sending it and treats the parsed dict as AWS's answer (a status >= 300 becomes a ClientError).
- `FakeEks`: the EKS operations moto lacks (HTTP 404 there): access entries, add-ons and DescribeUpdate,
  answered from dicts (add-ons go CREATING -> ACTIVE and DELETING -> gone over successive describes, as on
  AWS); and the authentication mode moto's CreateCluster ignores, added back to DescribeCluster answers.
  `install(ctx)` registers it on every client of an AwsContext (every thread's).

Used by tests/test_eks_e2e.py and the registry-wide contract tests (tests/contract/).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from kubeaws.aws.session import AwsContext

ACCOUNT = "123456789012"
Answer = tuple[AWSResponse, dict[str, Any]]


class _Raw:
    def __init__(self, body: bytes = b"") -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def answer(status: int, parsed: dict[str, Any], url: str = "https://aws.invalid") -> Answer:
    """A `before-call` handler's answer: HTTP `status` with the already parsed body `parsed`."""
    parsed = {**parsed, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}}
    return AWSResponse(url, status, HTTPHeaders(), _Raw()), parsed


def error(status: int, code: str, message: str) -> Answer:
    """An AWS error answer (botocore raises it as a ClientError with this code)."""
    return answer(status, {"Error": {"Code": code, "Message": message}})


class FakeEks:
    """The EKS operations moto lacks, answered from dicts (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.addons: dict[tuple[str, str], dict[str, Any]] = {}
        self.auth_modes: dict[str, str] = {}

    def install(self, ctx: AwsContext) -> FakeEks:
        ctx.add_hook("before-parameter-build.eks", self.remember)
        ctx.add_hook("before-call.eks", self.before_call)
        ctx.add_hook("after-call.eks.DescribeCluster", self.after_describe_cluster)
        return self

    @staticmethod
    def remember(params: Any, context: Any, **_: Any) -> None:
        """Keep the request's parameters as given (before-call only sees them serialized)."""
        context["fake_eks_params"] = copy.deepcopy(dict(params))

    def before_call(self, model: Any, context: Any, **_: Any) -> Answer | None:
        p = context.get("fake_eks_params", {})
        handler = getattr(self, f"_{model.name}", None)
        if model.name == "CreateCluster":
            with self.lock:
                self.auth_modes[p["name"]] = (p.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP")
            return None  # moto creates the cluster
        if handler is None:
            return None
        with self.lock:
            return handler(p)  # type: ignore[no-any-return]

    def after_describe_cluster(self, parsed: dict[str, Any], **_: Any) -> None:
        cluster = parsed.get("cluster")
        if cluster and cluster.get("name") in self.auth_modes and not cluster.get("accessConfig"):
            cluster["accessConfig"] = {"authenticationMode": self.auth_modes[cluster["name"]]}

    # -- access entries --------------------------------------------------------------------------------
    def _CreateAccessEntry(self, p: dict[str, Any]) -> Answer:
        key = (p["clusterName"], p["principalArn"])
        if key in self.entries:
            return error(409, "ResourceInUseException", "The specified access entry resource is already in use")
        entry = {"clusterName": p["clusterName"], "principalArn": p["principalArn"], "type": p.get("type", "STANDARD"),
                 "kubernetesGroups": list(p.get("kubernetesGroups") or []), "tags": dict(p.get("tags") or {}),
                 "accessEntryArn": f"arn:aws:eks:us-east-1:{ACCOUNT}:access-entry/{p['clusterName']}/role/x",
                 "username": "system:node:{{EC2PrivateDNSName}}"}
        self.entries[key] = entry
        return answer(200, {"accessEntry": copy.deepcopy(entry)})

    def _DescribeAccessEntry(self, p: dict[str, Any]) -> Answer:
        entry = self.entries.get((p["clusterName"], p["principalArn"]))
        if entry is None:
            return error(404, "ResourceNotFoundException", "No access entry")
        return answer(200, {"accessEntry": copy.deepcopy(entry)})

    def _ListAccessEntries(self, p: dict[str, Any]) -> Answer:
        return answer(200, {"accessEntries": [k[1] for k in self.entries if k[0] == p["clusterName"]]})

    def _ListAssociatedAccessPolicies(self, p: dict[str, Any]) -> Answer:
        return answer(200, {"clusterName": p["clusterName"], "principalArn": p["principalArn"],
                            "associatedAccessPolicies": []})

    def _DeleteAccessEntry(self, p: dict[str, Any]) -> Answer:
        if self.entries.pop((p["clusterName"], p["principalArn"]), None) is None:
            return error(404, "ResourceNotFoundException", "No access entry")
        return answer(200, {})

    # -- add-ons ---------------------------------------------------------------------------------------
    def _CreateAddon(self, p: dict[str, Any]) -> Answer:
        key = (p["clusterName"], p["addonName"])
        if key in self.addons:
            return error(409, "ResourceInUseException", "Addon already exists")
        addon = {"clusterName": p["clusterName"], "addonName": p["addonName"], "status": "CREATING",
                 "addonVersion": p.get("addonVersion") or "v1.0.0-eksbuild.1",
                 "serviceAccountRoleArn": p.get("serviceAccountRoleArn"), "tags": dict(p.get("tags") or {}),
                 "addonArn": f"arn:aws:eks:us-east-1:{ACCOUNT}:addon/{p['clusterName']}/{p['addonName']}/x",
                 "health": {"issues": []}}
        self.addons[key] = addon
        return answer(200, {"addon": {k: v for k, v in addon.items() if v is not None}})

    def _DescribeAddon(self, p: dict[str, Any]) -> Answer:
        key = (p["clusterName"], p["addonName"])
        addon = self.addons.get(key)
        if addon is None:
            return error(404, "ResourceNotFoundException", "No addon")
        shown = {k: v for k, v in addon.items() if v is not None}
        if addon["status"] == "CREATING":
            addon["status"] = "ACTIVE"  # the next describe sees it ready
        elif addon["status"] == "DELETING":
            del self.addons[key]  # the next describe sees it gone
        return answer(200, {"addon": copy.deepcopy(shown)})

    def _ListAddons(self, p: dict[str, Any]) -> Answer:
        return answer(200, {"addons": [k[1] for k in self.addons if k[0] == p["clusterName"]]})

    def _DeleteAddon(self, p: dict[str, Any]) -> Answer:
        addon = self.addons.get((p["clusterName"], p["addonName"]))
        if addon is None:
            return error(404, "ResourceNotFoundException", "No addon")
        addon["status"] = "DELETING"
        return answer(200, {"addon": copy.deepcopy({k: v for k, v in addon.items() if v is not None})})

    def _DescribeUpdate(self, p: dict[str, Any]) -> Answer:
        return answer(200, {"update": {"id": p["updateId"], "status": "Successful", "type": "VersionUpdate"}})
