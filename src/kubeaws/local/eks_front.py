"""The local emulator's EKS front: a WSGI layer in front of moto's server app, in the same process, that serves the
EKS operations moto lacks and that kubeaws calls, and forwards everything else to moto unchanged.

Served here (state in kubeaws.local.eks_state, AWS's JSON shapes and error codes):
- access entries and access policies: Create/Describe/List/Update/DeleteAccessEntry, Associate/Disassociate
  AccessPolicy, ListAssociatedAccessPolicies, ListAccessPolicies;
- add-ons: Create/Describe/List/Update/DeleteAddon, DescribeAddonVersions;
- updates: DescribeUpdate and ListUpdates of the updates made through the front, UpdateClusterVersion,
  UpdateNodegroupVersion and AssociateEncryptionConfig (applied to moto's cluster and node group);
- TagResource / UntagResource / ListTagsForResource of access entries and add-ons (other ARNs go to moto).

Completed around moto's own answers (moto's objects are changed in this process):
- CreateCluster: moto ignores `accessConfig`; the front keeps the authentication mode on the cluster (DescribeCluster
  then shows it) and, in the API modes, makes the creator's untagged admin access entry as EKS does
  (bootstrapClusterCreatorAdminPermissions, default true). moto gives every cluster of a process the same OIDC
  issuer; each cluster gets its own, as on AWS.
- UpdateClusterConfig: `accessConfig` moves the authentication mode (forward only, as EKS); moto's answer (the
  cluster) becomes AWS's (an update, then Successful in DescribeUpdate).
- DeleteCluster: when moto deleted the cluster, its access entries, add-ons and updates go too.
- POST /moto-api/reset also forgets the front's state.

An EKS request is one signed for the `eks` service (its SigV4 credential scope, as moto dispatches it); account
as moto reads it (MOTO_ACCOUNT_ID, the x-moto-account-id header, the access key). Paths are read raw
(RAW_URI: principal and policy ARNs are percent-encoded path segments).

Mounted by kubeaws.local.moto_server around moto's DomainDispatcherApplication.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from kubeaws.local.eks_state import API_MODES, ClusterInfo, EksApiError, EksState, invalid, not_found
from kubeaws.local.wsgi import collect

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Answer = tuple[int, dict[str, Any]]
AUTH_ORDER = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


class Request:
    """What the front needs of one request: method, raw path segments (unquoted), query, JSON body, scope."""

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/")
        path = raw.split("?", 1)[0]
        if "://" in path:  # an absolute request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        self.segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        self.multi = {k: v for k, v in parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True).items()}
        self.query = {k: v[-1] for k, v in self.multi.items()}
        match = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        self.access_key, self.region, self.service = match.groups() if match else ("", "", "")
        self._body: bytes | None = None

    def body(self) -> bytes:
        """The request body (read once; the WSGI input is replaced so that moto can read it again)."""
        if self._body is None:
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            self._body = self.environ["wsgi.input"].read(length) if length > 0 else b""
            self.environ["wsgi.input"] = io.BytesIO(self._body)
            self.environ["CONTENT_LENGTH"] = str(len(self._body))
        return self._body

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body() or b"{}")
        except ValueError:
            raise EksApiError(400, "SerializationException", "The request body is not JSON") from None
        return data if isinstance(data, dict) else {}

    def account(self) -> str:
        if os.environ.get("MOTO_ACCOUNT_ID"):
            return os.environ["MOTO_ACCOUNT_ID"]
        if self.environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
            return str(self.environ["HTTP_X_MOTO_ACCOUNT_ID"])
        from moto.iam.models import get_account_id_from

        return str(get_account_id_from(self.access_key or "AKIAEXAMPLE"))


def _partition(region: str) -> str:
    from moto.utilities.utils import get_partition

    return str(get_partition(region))


def _principal_exists(account: str, arn: str) -> bool:
    """Whether moto's IAM has the role or user `arn`."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account][arn.split(":")[1]]
    return any(r.arn == arn for r in backend.roles.values()) or any(u.arn == arn for u in backend.users.values())


def _iam_form(arn: str) -> str:
    """The IAM principal of a caller identity: an STS assumed-role ARN names its role."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts":
        kind, _, rest = parts[5].partition("/")
        name = rest.split("/")[0]
        return f"arn:{parts[1]}:iam::{parts[4]}:{'role' if kind == 'assumed-role' else kind}/{name}"
    return arn


class EksFront:
    """The WSGI application: the EKS routes of the module docstring, everything else to `app` (moto)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.state = EksState(principal_exists=_principal_exists)
        self.moto_lock = threading.Lock()  # changes the front makes to moto's objects

    # -- WSGI ----------------------------------------------------------------------------------------
    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        req = Request(environ)
        if req.segments == ["moto-api", "reset"] and req.method == "POST":
            self.state.reset()
            return self.app(environ, start_response)
        if req.service != "eks":
            return self.app(environ, start_response)
        try:
            answer = self.route(req)
        except EksApiError as exc:
            return _respond(start_response, exc.status, {"message": exc.message, **exc.about},
                            [("x-amzn-ErrorType", exc.code)])
        if answer is None:
            return self.app(environ, start_response)
        return _respond(start_response, answer[0], answer[1])

    def forward(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to moto and collect its whole answer."""
        req.body()  # moto reads the body from the replaced input
        return collect(self.app, req.environ)

    # -- routing -------------------------------------------------------------------------------------
    def route(self, req: Request) -> Answer | None:
        """The answer of an EKS request the front serves; None to leave it to moto."""
        s, m, st = req.segments, req.method, self.state
        if s == ["access-policies"] and m == "GET":
            return 200, st.list_access_policies(_partition(req.region), req.query)
        if s == ["addons", "supported-versions"] and m == "GET":
            return 200, st.describe_addon_versions(req.query, req.multi)
        if len(s) == 2 and s[0] == "tags" and st.holds(s[1]):
            if m == "POST":
                return 200, st.tag(s[1], dict(req.json().get("tags") or {}))
            if m == "DELETE":
                return 200, st.untag(s[1], list(req.multi.get("tagKeys") or []))
            return 200, st.tags_of(s[1])
        if s == ["clusters"] and m == "POST":
            return self.create_cluster(req)
        if len(s) < 2 or s[0] != "clusters":
            return None
        if len(s) == 2 and m == "DELETE":
            return self.delete_cluster(req, s[1])
        if len(s) == 3 and s[2] == "update-config" and m == "POST":
            return self.update_cluster_config(req, s[1])
        handler = self.handler(req, s[2:])
        if handler is None:
            return None
        return 200, handler(self.cluster(req, s[1]))

    def handler(self, req: Request, rest: list[str]) -> Callable[[ClusterInfo], dict[str, Any]] | None:
        """What serves /clusters/{name}/<rest>, given the cluster; None for moto's routes."""
        st, m, n = self.state, req.method, len(rest)
        table: dict[tuple[str, ...], Callable[[ClusterInfo], dict[str, Any]]] = {}
        if rest[:1] == ["access-entries"]:
            p = rest[1] if n > 1 else ""
            table = {
                ("POST", "1"): lambda c: st.create_access_entry(c, req.json()),
                ("GET", "1"): lambda c: st.list_access_entries(c, req.query),
                ("GET", "2"): lambda c: st.describe_access_entry(c, p),
                ("POST", "2"): lambda c: st.update_access_entry(c, p, req.json()),
                ("DELETE", "2"): lambda c: st.delete_access_entry(c, p),
                ("POST", "3"): lambda c: st.associate_access_policy(c, p, req.json()),
                ("GET", "3"): lambda c: st.list_associated_access_policies(c, p, req.query),
                ("DELETE", "4"): lambda c: st.disassociate_access_policy(c, p, rest[3]),
            }
            if n >= 3 and rest[2] != "access-policies":
                return None
        elif rest[:1] == ["addons"]:
            a = rest[1] if n > 1 else ""
            table = {
                ("POST", "1"): lambda c: st.create_addon(c, req.json()),
                ("GET", "1"): lambda c: st.list_addons(c, req.query),
                ("GET", "2"): lambda c: st.describe_addon(c, a),
                ("DELETE", "2"): lambda c: st.delete_addon(c, a),
                ("POST", "3"): lambda c: st.update_addon(c, a, req.json()),
            }
            if n == 3 and rest[2] != "update":
                return None
        elif rest[:1] == ["updates"]:
            table = {
                ("GET", "1"): lambda c: st.list_updates(c, req.query),
                ("POST", "1"): lambda c: self.update_cluster_version(req, c),
                ("GET", "2"): lambda c: st.describe_update(c, rest[1], req.query),
            }
        elif rest == ["encryption-config", "associate"]:
            table = {("POST", "2"): lambda c: self.associate_encryption_config(req, c)}
        elif n == 3 and rest[0] == "node-groups" and rest[2] == "update-version":
            table = {("POST", "3"): lambda c: self.update_nodegroup_version(req, c, rest[1])}
        return table.get((m, str(n)))

    # -- moto's clusters -----------------------------------------------------------------------------
    def moto_cluster(self, req: Request, name: str) -> Any:
        from moto.eks.models import eks_backends

        return eks_backends[req.account()][req.region].clusters.get(name)

    def cluster(self, req: Request, name: str) -> ClusterInfo:
        """The cluster `name` as moto has it; ResourceNotFoundException when it does not exist."""
        found = self.moto_cluster(req, name)
        if found is None:
            raise not_found(f"No cluster found for name: {name}.", clusterName=name)
        mode = (getattr(found, "access_config", None) or {}).get("authenticationMode") or "CONFIG_MAP"
        return ClusterInfo(req.account(), req.region, _partition(req.region), name, str(found.version), mode)

    def create_cluster(self, req: Request) -> Answer:
        body = req.json()
        access = dict(body.get("accessConfig") or {})
        mode = access.get("authenticationMode") or "CONFIG_MAP"
        if mode not in AUTH_ORDER:
            raise invalid(f"Unsupported authentication mode {mode}", clusterName=str(body.get("name", "")))
        status, headers, raw = self.forward(req)
        if status != 200:
            return status, _json_or_raise(status, headers, raw)
        answer = json.loads(raw)
        name = str(answer["cluster"]["name"])
        config = {"authenticationMode": mode,
                  "bootstrapClusterCreatorAdminPermissions": access.get("bootstrapClusterCreatorAdminPermissions",
                                                                         True)}
        issuer = f"https://oidc.eks.{req.region}.amazonaws.com/id/{secrets.token_hex(16).upper()}"
        with self.moto_lock:
            cluster = self.moto_cluster(req, name)
            cluster.access_config = config
            cluster.identity = {"oidc": {"issuer": issuer}}
        answer["cluster"]["accessConfig"], answer["cluster"]["identity"] = config, {"oidc": {"issuer": issuer}}
        if config["bootstrapClusterCreatorAdminPermissions"] and mode in API_MODES:
            self.state.bootstrap_creator(self.cluster(req, name), self.caller(req))
        return 200, answer

    def caller(self, req: Request) -> str:
        """The IAM principal behind the request's access key, as moto's STS sees it."""
        from moto.sts.models import sts_backends

        _, arn, _ = sts_backends[req.account()][_partition(req.region)].get_caller_identity(req.access_key,
                                                                                            req.region)
        return _iam_form(str(arn))

    def delete_cluster(self, req: Request, name: str) -> Answer:
        key = (req.account(), req.region, name)
        status, headers, raw = self.forward(req)
        if status == 200:
            self.state.drop_cluster(key)
        return status, _json_or_raise(status, headers, raw)

    def update_cluster_config(self, req: Request, name: str) -> Answer:
        c = self.cluster(req, name)
        body = req.json()
        mode = (body.get("accessConfig") or {}).get("authenticationMode")
        if mode is not None and (mode not in AUTH_ORDER or AUTH_ORDER.index(mode) < AUTH_ORDER.index(
                c.authentication_mode)):
            raise invalid(f"Unsupported authentication mode update from {c.authentication_mode} to {mode}",
                          clusterName=name)
        if mode == c.authentication_mode:
            raise invalid(f"The cluster already has authentication mode {mode}", clusterName=name)
        status, headers, raw = self.forward(req)
        if status != 200:
            return status, _json_or_raise(status, headers, raw)
        params = []
        if mode is not None:
            with self.moto_lock:
                cluster = self.moto_cluster(req, name)
                cluster.access_config = {**(getattr(cluster, "access_config", None) or {}),
                                         "authenticationMode": mode}
            params.append({"type": "AuthenticationMode", "value": mode})
        vpc = dict(body.get("resourcesVpcConfig") or {})
        if body.get("logging"):
            params.append({"type": "ClusterLogging", "value": json.dumps(body["logging"], sort_keys=True)})
        for key, kind_name in (("endpointPublicAccess", "EndpointPublicAccess"),
                               ("endpointPrivateAccess", "EndpointPrivateAccess"),
                               ("publicAccessCidrs", "PublicAccessCidrs"), ("subnetIds", "Subnets"),
                               ("securityGroupIds", "SecurityGroups")):
            if key in vpc:
                params.append({"type": kind_name, "value": json.dumps(vpc[key])})
        kind = ("AccessConfigUpdate" if mode else "LoggingUpdate" if body.get("logging") else
                "VpcConfigUpdate" if {"subnetIds", "securityGroupIds"} & set(vpc) else "EndpointAccessUpdate")
        return 200, {"update": self.state.record_update(c, kind, params)}

    def update_cluster_version(self, req: Request, c: ClusterInfo) -> dict[str, Any]:
        want = str(req.json().get("version") or "")
        have = [int(x) for x in c.minor().split(".")]
        try:
            major, minor = (int(x) for x in want.split(".")[:2])
        except ValueError:
            raise invalid(f"Unsupported Kubernetes version {want!r}", clusterName=c.name) from None
        if [major, minor] == have:
            raise invalid(f"The cluster is already at the desired configuration with version: {want}",
                          clusterName=c.name)
        if major != have[0] or minor != have[1] + 1:
            raise invalid(f"Unsupported Kubernetes minor version update from {c.minor()} to {want}",
                          clusterName=c.name)
        with self.moto_lock:
            self.moto_cluster(req, c.name).version = want
        return {"update": self.state.record_update(c, "VersionUpdate", [
            {"type": "Version", "value": want}, {"type": "PlatformVersion", "value": "eks.1"}])}

    def update_nodegroup_version(self, req: Request, c: ClusterInfo, name: str) -> dict[str, Any]:
        body = req.json()
        with self.moto_lock:
            group = self.moto_cluster(req, c.name).nodegroups.get(name)
            if group is None:
                raise not_found(f"No node group found for name: {name}.", clusterName=c.name, nodegroupName=name)
            params = []
            version = body.get("version")
            if version and [int(x) for x in str(version).split(".")[:2]] > [int(x) for x in c.minor().split(".")]:
                raise invalid(f"Requested Kubernetes version {version} is newer than the cluster's {c.version}",
                              clusterName=c.name, nodegroupName=name)
            template = body.get("launchTemplate")
            if template:
                have = dict(group.launch_template or {})
                if not have or any(template.get(k) and have.get(k) and template[k] != have[k] for k in ("id", "name")):
                    raise invalid("A node group's launch template can only change version, not ID or name",
                                  clusterName=c.name, nodegroupName=name)
                if template.get("version"):
                    group.launch_template = {**have, "version": str(template["version"])}
                    params.append({"type": "LaunchTemplateVersion", "value": str(template["version"])})
            if version:
                group.version = str(version)
                params.append({"type": "Version", "value": str(version)})
            if body.get("releaseVersion"):
                group.release_version = str(body["releaseVersion"])
                params.append({"type": "ReleaseVersion", "value": str(body["releaseVersion"])})
        return {"update": self.state.record_update(c, "VersionUpdate", params, nodegroupName=name)}

    def associate_encryption_config(self, req: Request, c: ClusterInfo) -> dict[str, Any]:
        config = req.json().get("encryptionConfig") or []
        with self.moto_lock:
            cluster = self.moto_cluster(req, c.name)
            if cluster.encryption_config:
                raise EksApiError(400, "InvalidRequestException", "Encryption is already enabled on the cluster",
                                  clusterName=c.name)
            cluster.encryption_config = list(config)
        return {"update": self.state.record_update(c, "AssociateEncryptionConfig", [
            {"type": "EncryptionConfig", "value": json.dumps(config, sort_keys=True)}])}


def _json_or_raise(status: int, headers: list[tuple[str, str]], raw: bytes) -> dict[str, Any]:
    """moto's JSON answer; its error answers are passed on with their code."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {"message": raw.decode(errors="replace")}
    if status >= 300:
        code = next((v for k, v in headers if k.lower() == "x-amzn-errortype"), "")
        raise EksApiError(status, code or "ServerException", str(body.get("message") or body.get("Message") or ""),
                          **{k: v for k, v in body.items() if k != "message" and isinstance(v, str)})
    return body if isinstance(body, dict) else {}


def _respond(start_response: StartResponse, status: int, body: dict[str, Any],
             headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body, default=_default).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                          ("x-amzn-RequestId", secrets.token_hex(16)), *(headers or [])])
    return [data]


def _default(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
