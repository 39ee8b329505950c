"""The boot scripts' AWS calls against the IAM policies of the roles that run them (static, no AWS).

For several specs (the examples, and variants: one private member with the API network interface, etcd backup
on and off, each CNI, addons on and off) the model is built (`kubeaws.model.build`), and for each launch
template its user data is rendered and the scripts it installs are taken from it; the role that runs them is
the one of the template's instance profile, its policy the role's rendered inline policy, and the state bucket's
policy the one the Bucket kind puts (model statements plus the TLS-only Deny). Every `aws` call of every script
(tests/script_aws_calls.py) becomes IAM requests (action, resource ARN, request context), each of which must be
allowed by the role's policy and not denied by the bucket policy (tests/iam_eval.py, with aws:SecureTransport
true). Resources and their tags come from the model: the etcd volumes, the API network interface, the instances
of each launch template (the template's instance tags plus the tags their Auto Scaling group propagates) and the
groups. `ENTITIES` and `RUNTIME` map the scripts' shell variables to them; a call on a variable nobody mapped
fails. Also here: the extractor misses no call (against a grep count), the evaluator's own tables, and negative
tests showing that the check reports exactly the calls a removed statement was allowing.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeaws.bootstrap.userdata import LIB_DIR, bucket_objects
from kubeaws.model import build
from kubeaws.model.control_plane import MEMBER_TAG
from kubeaws.model.graph import Graph
from kubeaws.model.iam import ECR_READ_ONLY
from kubeaws.pki import PKI_FILES
from kubeaws.resources.auto_scaling_group import tag_entries
from kubeaws.resources.base import Desired, Lookup, Ref, substitute
from kubeaws.resources.bucket import policy_document
from kubeaws.resources.pki import HASH_MARKER
from kubeaws.spec.load import load_spec, load_spec_text
from kubeaws.spec.models import ClusterSpec
from tests import iam_eval
from tests.helpers import merge
from tests.iam_eval import Decision, Request, evaluate, key_condition_holds
from tests.script_aws_calls import (
    Access,
    AwsCall,
    Resource,
    ShellValues,
    Var,
    accesses,
    cli_operations,
    extract_calls,
    grep_count,
    iam_action,
    parse_call,
    parts,
    resource_type,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ACCOUNT = "123456789012"
#: Managed policies the roles may carry, with the action prefixes they grant: a script call with such an action
#: would need the managed policy's document, which is not here (AmazonEC2ContainerRegistryReadOnly grants ECR
#: read actions only).
MANAGED = {ECR_READ_ONLY: ("ecr:",)}
NO_ADDONS = {"cloudProviderAWS": None, "ebsCSI": None, "metricsServer": None, "clusterAutoscaler": None,
             "rookCeph": None}


def _example(name: str, override: Mapping[str, Any] | None = None) -> ClusterSpec:
    if not override:
        return load_spec(EXAMPLES / f"{name}.yaml")
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return load_spec_text(yaml.safe_dump(merge(doc, {"spec": dict(override)})), f"{name} variant")


#: Specs checked: name -> how to load it (loaded, built and rendered anew by every test, never cached).
VARIANTS: dict[str, Callable[[], ClusterSpec]] = {
    # 1 private member (API network interface), calico, etcd backup by default, cloud provider + EBS CSI.
    "dev": lambda: _example("dev"),
    # 3 members behind an internal NLB, cilium, backup every 15 min, every addon, ten node groups.
    "ha": lambda: _example("ha"),
    "dev-flannel-bare": lambda: _example("dev", {"network": {"cni": "flannel"}, "etcdBackup": None,
                                                 "addons": NO_ADDONS}),
    "dev-cilium-autoscaler": lambda: _example("dev", {"network": {"cni": "cilium"},
                                                      "etcdBackup": {"everyMinutes": 5, "keep": 3},
                                                      "addons": {"clusterAutoscaler": {}}}),
    "single-public-calico": lambda: _example("dev", {"access": {"apiEndpoint": "public"}, "addons": NO_ADDONS}),
    "ha-calico-bare": lambda: _example("ha", {"network": {"cni": "calico"}, "etcdBackup": None,
                                              "addons": NO_ADDONS}),
}


# ---------------------------------------------------------------------------------------------------------
# The cluster as the model describes it
# ---------------------------------------------------------------------------------------------------------


def _fake_id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:17]}"


@dataclass
class Runner:
    """A launch template: the role its instances run as, the scripts its user data installs, its groups."""

    template: Desired
    role: str
    scripts: dict[str, str]
    groups: list[Desired]


@dataclass
class Cluster:
    spec: ClusterSpec
    graph: Graph
    bucket: str
    bucket_policy: dict[str, Any]
    role_arns: dict[str, str]
    policies: dict[str, list[dict[str, Any]]]
    managed: dict[str, list[str]]
    runners: list[Runner] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.spec.spec.region

    def value(self, value: Any) -> Any:
        """A model value with its Refs, Lookups and Computed values resolved (account ACCOUNT)."""
        return substitute(value, self._resolve)

    def _resolve(self, leaf: Ref | Lookup) -> Any:
        if isinstance(leaf, Lookup):
            return ACCOUNT if (leaf.source, leaf.name) == ("sts", "account_id") else f"<{leaf}>"
        desired = self.graph[leaf.key]
        if leaf.kind == "IamRole" and leaf.attr == "arn":
            props = desired.props
            return f"arn:aws:iam::{ACCOUNT}:role{props['path']}{self.value(props['name'])}"
        if leaf.attr == "name" and "name" in desired.props:
            return self.value(desired.props["name"])
        return f"<{leaf}>"

    @property
    def control_plane(self) -> Runner:
        return next(r for r in self.runners if r.template.name == "control-plane")

    def instances(self, runner: Runner) -> list[Resource]:
        """One instance per Auto Scaling group of the template: the template's instance tags, overridden by the
        group's tags that propagate at launch (Auto Scaling's documented precedence)."""
        out = []
        for group in runner.groups:
            name = self.value(group.props["name"])
            propagated = {e["Key"]: e["Value"] for e in tag_entries(name, group.tags) if e["PropagateAtLaunch"]}
            tags = {**self.value(runner.template.props["instance_tags"]), **propagated}
            arn = f"arn:aws:ec2:{self.region}:{ACCOUNT}:instance/{_fake_id('i', group.key)}"
            out.append(Resource(arn, tags, {"auto-scaling-group": (self.auto_scaling_group(group),)}))
        return out

    def auto_scaling_group(self, group: Desired) -> Resource:
        name = self.value(group.props["name"])
        uuid = hashlib.sha256(group.key.encode()).hexdigest()[:32]
        return Resource(f"arn:aws:autoscaling:{self.region}:{ACCOUNT}:autoScalingGroup:{uuid}:"
                        f"autoScalingGroupName/{name}", dict(group.tags))

    def etcd_volumes(self) -> list[Resource]:
        holders = tuple(self.instances(self.control_plane))
        return [Resource(f"arn:aws:ec2:{self.region}:{ACCOUNT}:volume/{_fake_id('vol', v.key)}", dict(v.tags),
                         {"attached-instance": holders})
                for v in self.graph.of_kind("Volume") if v.name.startswith("etcd-")]

    def api_interface(self) -> list[Resource]:
        return [Resource(f"arn:aws:ec2:{self.region}:{ACCOUNT}:network-interface/{_fake_id('eni', eni.key)}",
                         dict(eni.tags)) for eni in self.graph.of_kind("NetworkInterface") if eni.name == "api"]

    def api_attachments(self) -> list[Resource]:
        holders = tuple(self.instances(self.control_plane))
        return [Resource(f"attachment/{_fake_id('eni-attach', eni.arn)}", {},
                         {"network-interface": (eni,), "instance": holders}) for eni in self.api_interface()]


def cluster(variant: str) -> Cluster:
    """The variant's model, rendered now."""
    spec = VARIANTS[variant]()
    graph = build(spec)
    c = Cluster(spec, graph, "", {}, {}, {}, {})
    bucket = graph["Bucket/state"]
    c.bucket = c.value(bucket.props["name"])
    c.bucket_policy = policy_document(c.bucket, c.value(bucket.props)) or {}
    for role in graph.of_kind("IamRole"):
        assert role.brought_id is None, "the variants use the roles kubeaws creates"
        c.role_arns[role.name] = c.value(Ref("IamRole", role.name, "arn"))
        c.policies[role.name] = list(c.value(role.props["inline_policies"]).values())
        c.managed[role.name] = list(role.props.get("managed_policy_arns") or [])
    for template in graph.of_kind("LaunchTemplate"):
        profile = graph[template.props["iam_instance_profile"].key]
        runs_as = graph[profile.props["role_name"].key].name
        document = yaml.safe_load(c.value(template.props["user_data"]))
        scripts = {f["path"].rsplit("/", 1)[1]: f["content"] for f in document["write_files"]
                   if f["path"].startswith(f"{LIB_DIR}/") and f["path"].endswith(".sh")}
        groups = [g for g in graph.of_kind("AutoScalingGroup")
                  if isinstance(g.props["launch_template_id"], Ref)
                  and g.props["launch_template_id"].key == template.key]
        c.runners.append(Runner(template, runs_as, scripts, groups))
    return c


# ---------------------------------------------------------------------------------------------------------
# The scripts' shell variables -> the model
# ---------------------------------------------------------------------------------------------------------

#: Variables that name an AWS resource in an `aws` call -> the resources they can be (for the instances of
#: `runner`). A call on a variable missing here fails: map it before trusting the check.
ENTITIES: dict[str, Callable[[Cluster, Runner], list[Resource]]] = {
    # identify_node: `imds instance-id`, the instance itself.
    "INSTANCE_ID": lambda c, r: c.instances(r),
    # mark_unhealthy: INSTANCE_ID, or the saved / IMDS instance ID: the instance itself.
    "id": lambda c, r: c.instances(r),
    # attach_etcd_volume: the instance the member's etcd volume is attached to: an earlier control-plane instance.
    "holder": lambda c, r: c.instances(c.control_plane),
    # attach_etcd_volume: the volume tagged kubeaws.io/etcd-member=<member> (the model's Volume/etcd-<i>).
    "VOLUME_ID": lambda c, r: c.etcd_volumes(),
    # attach_api_eni: the interface tagged kubeaws.io/resource=NetworkInterface/api.
    "ENI_ID": lambda c, r: c.api_interface(),
    # attach_api_eni: the API interface's attachment to the (dead) control-plane instance holding it.
    "attachment": lambda c, r: c.api_attachments(),
}

def _members(c: Cluster, values: ShellValues) -> list[str]:
    """The member indexes (instance tag kubeaws.io/control-plane-member, propagated from the groups)."""
    return sorted(g.tags[MEMBER_TAG] for g in c.graph.of_kind("AutoScalingGroup") if MEMBER_TAG in g.tags)


#: Variables that take part in S3 keys but are only known on the instance -> the values they stand for.
RUNTIME: dict[str, Callable[[Cluster, ShellValues], list[str]]] = {
    # install_pki: `for f in $PKI_FILES`.
    "f": lambda c, v: (v.static("PKI_FILES") or "").strip('"').split(),
    # install_addons: the addon files kubeaws uploads under cluster/addons/.
    "name": lambda c, v: [k.removeprefix("cluster/addons/") for k in bucket_objects(c.spec)],
    # the member index (from the instance's tag; etcd-backup.sh reads it back from a file).
    "MEMBER": _members,
    "member": _members,
    # etcd-backup.sh: `date -u +%Y%m%dT%H%M%SZ`, and the snapshot stems `aws s3 ls` lists under the prefix.
    "ts": lambda c, v: ["20250101T000000Z"],
    "old": lambda c, v: ["20240101T000000Z"],  # the stem: the loop removes <old>.db and <old>.json
    # etcd-restore-watch.sh: the operation `etcd-restore/current` names (kubeaws.etcd_restore: <time>-<digest>).
    "op": lambda c, v: ["20250101T000000Z-0123456789ab"],
}


def runtime_for(c: Cluster) -> dict[str, Callable[[ShellValues], Sequence[str]]]:
    def bind(fn: Callable[[Cluster, ShellValues], list[str]]) -> Callable[[ShellValues], Sequence[str]]:
        return lambda values: fn(c, values)
    return {name: bind(fn) for name, fn in RUNTIME.items()}


def objects_for(c: Cluster) -> Callable[[str, str], Sequence[str]]:
    """The keys kubeaws writes in the state bucket (the PKI, with its CA hash marker, and the StateObjects), for
    the recursive downloads."""
    keys = [str(c.value(o.props["key"])) for o in c.graph.of_kind("StateObject")]
    for pki in c.graph.of_kind("ClusterPki"):
        prefix = pki.props.get("prefix") or "pki/"
        keys += [f"{prefix}{name}" for name in PKI_FILES] + [f"{prefix}{HASH_MARKER}sha256:{'0' * 64}"]

    def objects(bucket: str, prefix: str) -> Sequence[str]:
        assert bucket == c.bucket, f"a listing of another bucket than the state bucket: {bucket}"
        return sorted(k for k in keys if k.startswith(prefix))
    return objects


def entities_for(c: Cluster, runner: Runner) -> Callable[[str, AwsCall], Sequence[Resource]]:
    def entities(variable: str, call: AwsCall) -> Sequence[Resource]:
        if variable not in ENTITIES:
            raise KeyError(f"{call}: ${variable} names a resource but is not in ENTITIES")
        found = ENTITIES[variable](c, runner)
        assert found, f"{call}: ${variable} maps to no resource of the model"
        return found
    return entities


# ---------------------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One access, the role policy's decision, and (S3 on the state bucket) the decision with the bucket
    policy added."""

    access: Access
    role: iam_eval.Result
    combined: iam_eval.Result | None

    @property
    def allowed(self) -> bool:
        return self.role.allowed and (self.combined is None or self.combined.allowed)

    def __str__(self) -> str:
        why = f"role policy: {self.role.decision.value}"
        if self.combined is not None and not self.combined.allowed:
            why += f"; with the bucket policy: {self.combined.decision.value} {list(self.combined.denied_by)}"
        return f"{self.access}: {why}"


@dataclass
class Report:
    verdicts: list[Verdict] = field(default_factory=list)
    unreachable: list[AwsCall] = field(default_factory=list)

    def denied(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.allowed]


def request(c: Cluster, role: str, access: Access) -> Request:
    context: dict[str, str | Sequence[str]] = {
        "aws:SecureTransport": "true", "aws:PrincipalAccount": ACCOUNT, "aws:PrincipalArn": c.role_arns[role],
        "aws:PrincipalType": "AssumedRole", "aws:RequestedRegion": c.region, "ec2:Region": c.region,
        **access.context}
    return Request.make(access.action, access.resource.arn, context, principal=c.role_arns[role])


def check_script(c: Cluster, runner: Runner, name: str, policies: Sequence[Mapping[str, Any]] | None = None,
                 script: str | None = None) -> Report:
    """Every call of one script of `runner` against its role's policies (or `policies`)."""
    role = runner.role
    policies = c.policies[role] if policies is None else policies
    text = runner.scripts[name] if script is None else script
    values = ShellValues(text, name, runtime_for(c))
    report = Report()
    unknown = set(c.managed[role]) - set(MANAGED)
    assert not unknown, f"the {role} role has managed policies this check does not know: {unknown}"
    for call in extract_calls(text, name):
        if not values.reachable(call.function):
            report.unreachable.append(call)
            continue
        for access in accesses(parse_call(call), values, entities_for(c, runner), objects_for(c)):
            for arn, prefixes in MANAGED.items():
                if arn in c.managed[role]:
                    assert not access.action.startswith(prefixes), f"{access}: needs the managed policy {arn}"
            req = request(c, role, access)
            combined = None
            if access.action.startswith("s3:") and access.resource.arn.startswith(f"arn:aws:s3:::{c.bucket}"):
                combined = evaluate([*policies, c.bucket_policy], req)
            report.verdicts.append(Verdict(access, evaluate(policies, req), combined))
    return report


def check_role(c: Cluster, role: str, policies: Sequence[Mapping[str, Any]] | None = None) -> Report:
    report = Report()
    for runner in c.runners:
        if runner.role == role:
            for name in runner.scripts:
                one = check_script(c, runner, name, policies)
                report.verdicts += one.verdicts
                report.unreachable += one.unreachable
    return report


def denied_lines(report: Report) -> list[str]:
    return sorted({str(v) for v in report.denied()})


# ---------------------------------------------------------------------------------------------------------
# Every call of every script is allowed
# ---------------------------------------------------------------------------------------------------------

#: (variant, role) -> the production defect that makes the check fail there (strict: fixed defects XPASS).
DEFECTS: dict[tuple[str, str], str] = {}


def _params() -> list[Any]:
    out = []
    for variant in VARIANTS:
        for role in ("control-plane", "node"):
            reason = DEFECTS.get((variant, role))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(variant, role, marks=marks, id=f"{variant}-{role}"))
    return out


@pytest.mark.parametrize(("variant", "role"), _params())
def test_every_call_is_allowed_for_the_role_that_runs_it(variant: str, role: str) -> None:
    c = cluster(variant)
    report = check_role(c, role)
    assert report.verdicts, "no call checked"
    assert denied_lines(report) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_scripts_run_as_the_expected_roles(variant: str) -> None:
    c = cluster(variant)
    backup = c.spec.spec.etcd_backup is not None
    expected_cp = {"bootstrap-control-plane.sh", "token-refresh.sh"} | (
        {"etcd-backup.sh", "etcd-restore-watch.sh"} if backup else set())
    assert c.control_plane.role == "control-plane"
    assert set(c.control_plane.scripts) == expected_cp
    nodes = [r for r in c.runners if r is not c.control_plane]
    assert {r.role for r in nodes} == {"node"}
    assert sorted(n for r in nodes for n in r.scripts) == sorted(
        f"bootstrap-node-{g.name}.sh" for g in c.spec.spec.node_groups if g.type == "self-managed")
    assert all(r.groups for r in c.runners), "every launch template has its Auto Scaling groups"
    for runner in c.runners:
        for name, text in runner.scripts.items():
            values = ShellValues(text, name, {})
            if values.static("BUCKET") is not None:
                assert values.expand("$BUCKET", None) == [c.bucket], name


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_extractor_finds_every_aws_call(variant: str) -> None:
    c = cluster(variant)
    for runner in c.runners:
        for name, text in runner.scripts.items():
            calls = extract_calls(text, name)
            assert len(calls) == grep_count(text), name
            assert calls, f"{name} has no aws call"
            for call in calls:
                parse_call(call)  # every call is a valid command line of the CLI


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_helpers_nothing_calls_are_skipped(variant: str) -> None:
    """A call is left unchecked only when its function is never called in that script: the node scripts share
    the common part's s3_put, which only the control plane uses."""
    c = cluster(variant)
    assert [str(call) for call in check_role(c, "control-plane").unreachable] == []
    assert {call.function for call in check_role(c, "node").unreachable} <= {"s3_put"}


def test_the_api_network_interface_calls_are_checked_on_the_interface_and_the_instance() -> None:
    c = cluster("dev")
    report = check_script(c, c.control_plane, "bootstrap-control-plane.sh")
    by_api: dict[str, set[str]] = {}
    for v in report.verdicts:
        by_api.setdefault(v.access.api, set()).add(resource_type(v.access.resource.arn) or "*")
    assert by_api["AttachVolume"] == by_api["DetachVolume"] == {"instance", "volume"}
    assert by_api["AttachNetworkInterface"] == by_api["DetachNetworkInterface"] == {"instance", "network-interface"}
    assert by_api["SetInstanceHealth"] == {"autoScalingGroup"}
    assert by_api["DescribeInstances"] == {"*"}
    tag = f"aws:resourcetag/kubernetes.io/cluster/{c.spec.metadata.name}"
    for v in report.verdicts:
        if v.access.resource.arn != "*" and v.access.action.startswith(("ec2:", "autoscaling:")):
            assert request(c, "control-plane", v.access).context[tag] == ("owned",), v.access


def test_s3_keys_come_from_the_call_sites_of_the_helpers() -> None:
    c = cluster("ha")
    cp = {(v.access.action, v.access.resource.arn) for v in check_role(c, "control-plane").verdicts}
    obj = f"arn:aws:s3:::{c.bucket}/"
    for key in ("cluster/cluster.json", "pki/ca.key", "pki/etcd/ca.key", "pki/encryption-key", "join/token",
                "etcd/members/member-2", "cluster/addons/cni-cilium.yaml", "cluster/addons/cloud-provider-aws.yaml"):
        assert ("s3:GetObject", obj + key) in cp, key
    for key in ("join/token", "join/initialized", "etcd/members/member-0", "etcd-backups/member-1/20250101T000000Z.db"):
        assert ("s3:PutObject", obj + key) in cp, key
    assert ("s3:DeleteObject", obj + "etcd-backups/member-0/20240101T000000Z.db") in cp
    assert ("s3:ListBucket", f"arn:aws:s3:::{c.bucket}") in cp
    node = {(v.access.action, v.access.resource.arn) for v in check_role(c, "node").verdicts}
    assert {a for a in node if a[0].startswith("s3:")} == {("s3:GetObject", obj + "cluster/cluster.json"),
                                                           ("s3:GetObject", obj + "join/token")}


# ---------------------------------------------------------------------------------------------------------
# The check can fail
# ---------------------------------------------------------------------------------------------------------


def _without(policies: Sequence[Mapping[str, Any]], predicate: Callable[[Mapping[str, Any]], bool]
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """The policies minus the statements matching `predicate`, and the removed statements' Sids."""
    out, removed = [], []
    for policy in policies:
        doc = copy.deepcopy(dict(policy))
        kept = []
        for st in iam_eval.statements(doc):
            if predicate(st):
                removed.append(str(st.get("Sid")))
            else:
                kept.append(st)
        doc["Statement"] = kept
        out.append(doc)
    return out, removed


def _actions(statement: Mapping[str, Any]) -> list[str]:
    found = statement.get("Action", [])
    return [found] if isinstance(found, str) else list(found)


@pytest.mark.parametrize(("role", "action", "expected"), [
    ("control-plane", "ec2:AttachVolume",
     {"AttachVolume", "DetachVolume", "AttachNetworkInterface", "DetachNetworkInterface"}),
    ("control-plane", "autoscaling:SetInstanceHealth", {"SetInstanceHealth"}),
    ("control-plane", "s3:PutObject", {"HeadObject", "GetObject", "PutObject", "DeleteObject"}),
    ("node", "s3:GetObject", {"HeadObject", "GetObject"}),
    ("node", "autoscaling:SetInstanceHealth", {"SetInstanceHealth"}),
])
def test_removing_a_statement_reports_exactly_the_calls_it_allowed(role: str, action: str,
                                                                    expected: set[str]) -> None:
    c = cluster("dev")
    baseline = check_role(c, role)
    policies, removed = _without(c.policies[role], lambda st: action in _actions(st) and st["Effect"] == "Allow")
    assert removed, f"no statement of the {role} policy allows {action}"
    report = check_role(c, role, policies)
    newly = {str(v.access) for v in report.denied()} - {str(v.access) for v in baseline.denied()}
    assert {v.access.api for v in report.denied() if str(v.access) in newly} == expected
    # exactly the accesses the removed statements alone were allowing
    only = {str(v.access) for v in baseline.verdicts if v.role.allowed and set(v.role.allowed_by) <= set(removed)}
    assert newly == only


@pytest.mark.parametrize("role", ["control-plane", "node"])
def test_removing_any_statement_denies_exactly_what_it_alone_allowed(role: str) -> None:
    c = cluster("ha")
    baseline = check_role(c, role)
    sids = {sid for v in baseline.verdicts for sid in v.role.allowed_by}
    assert sids
    for sid in sorted(sids):
        def named(statement: Mapping[str, Any], wanted: str = sid) -> bool:
            return statement.get("Sid") == wanted
        policies, _ = _without(c.policies[role], named)
        report = check_role(c, role, policies)
        newly = {str(v.access) for v in report.denied()} - {str(v.access) for v in baseline.denied()}
        only = {str(v.access) for v in baseline.verdicts if v.role.allowed and set(v.role.allowed_by) <= {sid}}
        assert newly == only and newly, sid


def test_a_missing_detach_network_interface_is_reported_on_the_interface_and_the_dead_instance() -> None:
    """The defect of the single private member (AccessDenied on the API interface's forced detach): without
    that one action, exactly that call is reported, on both resources it authorizes."""
    c = cluster("dev")
    policies = copy.deepcopy(c.policies["control-plane"])
    for policy in policies:
        for st in iam_eval.statements(policy):
            if isinstance(st.get("Action"), list) and "ec2:DetachNetworkInterface" in st["Action"]:
                st["Action"].remove("ec2:DetachNetworkInterface")
    report = check_role(c, "control-plane", policies)
    denied = {(v.access.call.function, v.access.api, resource_type(v.access.resource.arn)) for v in report.denied()}
    assert denied == {("attach_api_eni", "DetachNetworkInterface", "network-interface"),
                      ("attach_api_eni", "DetachNetworkInterface", "instance")}
    eni = c.api_interface()[0].arn
    assert eni in {v.access.resource.arn for v in report.denied()}


def test_nodes_cannot_mark_control_plane_members_unhealthy() -> None:
    """SetInstanceHealth is scoped to the groups of the caller's own role: a node cannot get a control-plane
    member terminated."""
    c = cluster("ha")
    runner = next(r for r in c.runners if r.role == "node")
    script = 'aws autoscaling set-instance-health --instance-id "$holder" --health-status Unhealthy\n'
    report = check_script(c, runner, "probe.sh", script=script)
    assert len(report.verdicts) == c.spec.spec.control_plane.count
    assert all(":autoScalingGroupName/prod-ha-control-plane-" in v.access.resource.arn for v in report.verdicts)
    assert [str(v) for v in report.verdicts if v.allowed] == []


def test_a_node_reading_the_pki_is_reported_by_the_role_and_the_bucket_policy() -> None:
    c = cluster("dev")
    runner = next(r for r in c.runners if r.role == "node")
    script = f'BUCKET="{c.bucket}"\naws s3 cp --region "$REGION" "s3://$BUCKET/pki/ca.key" /tmp/ca.key\n'
    report = check_script(c, runner, "probe.sh", script=script)
    assert {v.access.api for v in report.denied()} == {"HeadObject", "GetObject"}
    for v in report.denied():
        assert v.role.decision is Decision.IMPLICIT_DENY
        assert v.combined is not None and v.combined.denied_by == ("NodesClusterInfoOnly",)


def test_plain_http_to_the_state_bucket_is_denied_by_the_bucket_policy() -> None:
    c = cluster("dev")
    req = Request.make("s3:GetObject", f"arn:aws:s3:::{c.bucket}/cluster/cluster.json",
                       {"aws:SecureTransport": "false", "aws:PrincipalAccount": ACCOUNT},
                       principal=c.role_arns["control-plane"])
    result = evaluate([*c.policies["control-plane"], c.bucket_policy], req)
    assert result.decision is Decision.EXPLICIT_DENY and result.denied_by == ("DenyInsecureTransport",)


def test_a_variable_nobody_mapped_fails_loudly() -> None:
    c = cluster("dev")
    script = 'aws ec2 attach-volume --volume-id "$SOME_VOLUME" --instance-id "$INSTANCE_ID" --device /dev/xvdf\n'
    with pytest.raises(KeyError, match="SOME_VOLUME"):
        check_script(c, c.control_plane, "probe.sh", script=script)
    script = f'BUCKET="{c.bucket}"\naws s3 cp "s3://$BUCKET/$UNKNOWN_KEY" /tmp/x\n'
    with pytest.raises(KeyError, match="UNKNOWN_KEY"):
        check_script(c, c.control_plane, "probe.sh", script=script)


def test_an_action_without_a_resource_rule_fails_loudly() -> None:
    c = cluster("dev")
    script = 'aws ec2 terminate-instances --instance-ids "$INSTANCE_ID"\n'
    with pytest.raises(KeyError, match="RESOURCE_RULES"):
        check_script(c, c.control_plane, "probe.sh", script=script)


# ---------------------------------------------------------------------------------------------------------
# The extractor and the CLI mapping
# ---------------------------------------------------------------------------------------------------------

SAMPLE = r'''#!/bin/bash
# aws s3 cp in a comment is no call
s3_get() { aws s3 cp --only-show-errors "s3://$BUCKET/$1" "$2"; }
log "aws s3 ls in a message is no call"
command -v aws >/dev/null 2>&1
VOLUME_ID="$(aws ec2 describe-volumes --region "$REGION" \
  --filters "Name=tag:a,Values=b" \
  --query 'Volumes[0].VolumeId' --output text)"
cat >/etc/x <<'EOF'
aws ec2 describe-regions
EOF
main() {
  if ! out="$(echo "$(aws sts get-caller-identity)")"; then
    retry "x" aws ec2 describe-instances --instance-ids "$INSTANCE_ID" || log "no"
  fi
  echo `aws ec2 describe-tags`
  s3_get cluster/a.json /tmp/a
}
main
'''


def test_extractor_handles_functions_substitutions_continuations_and_heredocs() -> None:
    calls = extract_calls(SAMPLE, "sample.sh")
    assert [(c.line, c.function, c.service, c.operation) for c in calls] == [
        (3, "s3_get", "s3", "cp"), (6, None, "ec2", "describe-volumes"), (13, "main", "sts", "get-caller-identity"),
        (14, "main", "ec2", "describe-instances"), (16, "main", "ec2", "describe-tags")]
    volumes = parse_call(calls[1])
    assert [w.text for w in volumes.options["--filters"]] == ['"Name=tag:a,Values=b"']
    assert [w.text for w in volumes.options["--query"]] == ["'Volumes[0].VolumeId'"]
    assert [w.text for w in parse_call(calls[3]).options["--instance-ids"]] == ['"$INSTANCE_ID"']
    values = ShellValues(SAMPLE, "sample.sh", {})
    assert values.expand('"s3://$BUCKET/$1"', "s3_get", strict=False) == ["s3://<$BUCKET>/cluster/a.json"]
    assert values.reachable("s3_get") and values.reachable("main") and not values.reachable("other")


def test_grep_count_over_counts_only_quoted_text_and_heredocs() -> None:
    """grep also counts the log message and the here-document line, which are no calls: the real scripts have
    neither (their counts are equal), so a difference there means a call the extractor missed, or text to
    look at."""
    assert grep_count(SAMPLE) == len(extract_calls(SAMPLE, "sample.sh")) + 2


def test_parts_and_expansion() -> None:
    assert parts('"s3://$BUCKET/${prefix}x-${ts:-now}"\'$lit\'') == (
        "s3://", Var("BUCKET"), "/", Var("prefix"), "x-", Var("ts", "now"), "$lit")
    values = ShellValues('A="x"\nB="$A/y"\nfor f in 1 2; do :; done\nC=1\nC=2\n', "t.sh", {"f": ["p", "q"]})
    assert values.expand('"$B/$f"', None) == ["x/y/p", "x/y/q"]
    assert values.expand("${UNSET:-d}", None) == ["d"]
    with pytest.raises(KeyError, match=r"\$C"):
        values.expand("$C", None)
    assert values.expand("$C", None, strict=False) == ["<$C>"]
    with pytest.raises(ValueError, match="command substitution"):
        parts('"$(date)"')


def test_cli_operations_come_from_the_service_models() -> None:
    assert cli_operations("ec2")["detach-network-interface"] == "DetachNetworkInterface"
    assert cli_operations("s3api")["head-object"] == "HeadObject"
    assert cli_operations("autoscaling")["set-instance-health"] == "SetInstanceHealth"
    assert iam_action("ec2", "AttachVolume") == "ec2:AttachVolume"
    assert iam_action("s3api", "HeadObject") == "s3:GetObject"
    assert iam_action("s3api", "ListObjectsV2") == "s3:ListBucket"


@pytest.mark.parametrize(("line", "error"), [
    ("aws ec2 attach-volume --volume-id v --instance-id i", "required options missing"),
    ("aws ec2 describe-volumes --volume-idz v", "unknown option --volume-idz"),
    ("aws ec2 detach-volumes --volume-id v", "not an operation"),
    ("aws s3 cp --only-show-errors s3://b/k", "takes 2 paths"),
])
def test_invalid_command_lines_are_refused(line: str, error: str) -> None:
    [call] = extract_calls(line + "\n", "t.sh")
    with pytest.raises(ValueError, match=error):
        parse_call(call)


def test_s3_commands_map_to_their_api_actions_and_context() -> None:
    script = ('B="bkt"\naws s3 cp --sse AES256 "$tmp" "s3://$B/k"\naws s3 cp "s3://$B/k" /tmp/k\n'
              'aws s3 ls "s3://$B/p/"\naws s3 rm "s3://$B/old"\naws s3 mv "s3://$B/a" "s3://$B/b"\n'
              'aws s3api head-object --bucket "$B" --key k\n')
    values = ShellValues(script, "t.sh", {})
    got = [(a.api, a.action, a.resource.arn, dict(a.context))
           for call in extract_calls(script, "t.sh") for a in accesses(parse_call(call), values, lambda v, c: [])]
    assert got == [
        ("PutObject", "s3:PutObject", "arn:aws:s3:::bkt/k", {"s3:x-amz-server-side-encryption": ("AES256",)}),
        ("HeadObject", "s3:GetObject", "arn:aws:s3:::bkt/k", {}),
        ("GetObject", "s3:GetObject", "arn:aws:s3:::bkt/k", {}),
        ("ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::bkt", {"s3:prefix": ("p/",), "s3:delimiter": ("/",)}),
        ("DeleteObject", "s3:DeleteObject", "arn:aws:s3:::bkt/old", {}),
        ("HeadObject", "s3:GetObject", "arn:aws:s3:::bkt/a", {}),
        ("GetObject", "s3:GetObject", "arn:aws:s3:::bkt/a", {}),
        ("CopyObject", "s3:PutObject", "arn:aws:s3:::bkt/b", {}),
        ("DeleteObject", "s3:DeleteObject", "arn:aws:s3:::bkt/a", {}),
        ("HeadObject", "s3:GetObject", "arn:aws:s3:::bkt/k", {}),
    ]


@pytest.mark.parametrize("line", ['aws s3 cp --recursive "s3://$B/p/" /tmp/p/', 'aws s3 sync "s3://$B/p/" /tmp/p',
                                  'aws s3 rm --recursive "s3://$B/p/"'])
def test_recursive_s3_commands_list_the_prefix_then_touch_every_object(line: str) -> None:
    script = f'B="bkt"\n{line}\n'
    values = ShellValues(script, "t.sh", {})
    [call] = extract_calls(script, "t.sh")
    found = accesses(parse_call(call), values, lambda v, c: [], lambda b, p: [f"{p}a", f"{p}b/c"])
    api = "DeleteObject" if " rm " in line else "GetObject"
    assert [(a.api, a.resource.arn, dict(a.context)) for a in found] == [
        ("ListObjectsV2", "arn:aws:s3:::bkt", {"s3:prefix": ("p/",)}),
        (api, "arn:aws:s3:::bkt/p/a", {}), (api, "arn:aws:s3:::bkt/p/b/c", {})]


@pytest.mark.parametrize("line", ['aws s3 cp --recursive /tmp/p "s3://$B/p/"', 'aws s3 sync /tmp/p "s3://$B/p/"',
                                  'aws s3 cp /tmp/a /tmp/b'])
def test_s3_commands_that_cannot_be_followed_are_refused(line: str) -> None:
    script = f'B="bkt"\n{line}\n'
    [call] = extract_calls(script, "t.sh")
    with pytest.raises((NotImplementedError, ValueError)):
        accesses(parse_call(call), ShellValues(script, "t.sh", {}), lambda v, c: [])


# ---------------------------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------------------------

BKT = "arn:aws:s3:::bkt"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def _deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


@pytest.mark.parametrize(("statements", "action", "resource", "decision"), [
    ([], "s3:GetObject", f"{BKT}/k", Decision.IMPLICIT_DENY),
    ([_allow("s3:GetObject", f"{BKT}/*")], "s3:GetObject", f"{BKT}/a/b", Decision.ALLOW),
    ([_allow("s3:GetObject", f"{BKT}/*"), _deny("s3:*", f"{BKT}/a/*")], "s3:GetObject", f"{BKT}/a/b",
     Decision.EXPLICIT_DENY),
    ([_deny("s3:PutObject", "*"), _allow()], "s3:GetObject", f"{BKT}/k", Decision.ALLOW),
    # action names: wildcards, case-insensitive
    ([_allow("EC2:describe*")], "ec2:DescribeVolumes", "*", Decision.ALLOW),
    ([_allow("ec2:Describe?olumes")], "ec2:DescribeVolumes", "*", Decision.ALLOW),
    ([_allow("ec2:Describe?")], "ec2:DescribeVolumes", "*", Decision.IMPLICIT_DENY),
    ([_allow("ec2:Attach*")], "ec2:DetachVolume", "*", Decision.IMPLICIT_DENY),
    ([{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}], "ec2:AttachVolume", "*", Decision.ALLOW),
    ([{"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "*"}], "s3:GetObject", "*", Decision.IMPLICIT_DENY),
    # resources: segment wildcards, `?`, NotResource, case-sensitive, "*" in a statement
    ([_allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/*")], "ec2:AttachVolume",
     "arn:aws:ec2:us-east-1:1:volume/vol-1", Decision.ALLOW),
    ([_allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/*")], "ec2:AttachVolume",
     "arn:aws:ec2:us-east-1:1:instance/i-1", Decision.IMPLICIT_DENY),
    ([_allow("ec2:AttachVolume", ["arn:aws:ec2:*:*:volume/*"])], "ec2:AttachVolume", "*", Decision.IMPLICIT_DENY),
    ([_allow("s3:GetObject", f"{BKT}/join/toke?")], "s3:GetObject", f"{BKT}/join/token", Decision.ALLOW),
    ([_allow("s3:GetObject", f"{BKT}/join/toke?")], "s3:GetObject", f"{BKT}/join/tokens", Decision.IMPLICIT_DENY),
    ([_allow("s3:GetObject", f"{BKT}/Join/*")], "s3:GetObject", f"{BKT}/join/token", Decision.IMPLICIT_DENY),
    ([_allow("s3:ListBucket", BKT)], "s3:ListBucket", f"{BKT}/x", Decision.IMPLICIT_DENY),
    ([_allow("autoscaling:*", "arn:aws:autoscaling:*")], "autoscaling:SetInstanceHealth",
     "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u:autoScalingGroupName/g", Decision.ALLOW),
    ([_allow("ec2:*", "arn:aws:ec2:us-*:1:instance/*")], "ec2:X", "arn:aws:ec2:eu-west-1:1:instance/i",
     Decision.IMPLICIT_DENY),
    ([{"Effect": "Deny", "Action": "s3:GetObject", "NotResource": [f"{BKT}/cluster/*"]}, _allow()],
     "s3:GetObject", f"{BKT}/pki/ca.key", Decision.EXPLICIT_DENY),
    ([{"Effect": "Deny", "Action": "s3:GetObject", "NotResource": [f"{BKT}/cluster/*"]}, _allow()],
     "s3:GetObject", f"{BKT}/cluster/x", Decision.ALLOW),
])
def test_decisions(statements: list[dict[str, Any]], action: str, resource: str, decision: Decision) -> None:
    assert evaluate([_policy(*statements)], Request.make(action, resource)).decision is decision


def test_policies_are_evaluated_together_and_a_deny_in_any_wins() -> None:
    req = Request.make("s3:GetObject", f"{BKT}/k", principal="arn:aws:iam::1:role/r")
    identity = _policy(_allow("s3:GetObject", f"{BKT}/*"))
    bucket_deny = _policy({"Sid": "No", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::1:role/r"},
                           "Action": "s3:*", "Resource": f"{BKT}/*"})
    bucket_allow = _policy({"Sid": "Yes", "Effect": "Allow", "Principal": {"AWS": "1"}, "Action": "s3:GetObject",
                            "Resource": f"{BKT}/*"})
    assert evaluate([identity, bucket_deny], req).denied_by == ("No",)
    assert evaluate([_policy(), bucket_allow], req).allowed_by == ("Yes",)
    other = Request.make("s3:GetObject", f"{BKT}/k", principal="arn:aws:iam::2:role/r")
    assert evaluate([bucket_allow], other).decision is Decision.IMPLICIT_DENY
    assert evaluate([_policy({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::1:role/r"}, "Action": "*",
                              "Resource": "*"})], other).decision is Decision.EXPLICIT_DENY
    with pytest.raises(ValueError, match="principal"):
        evaluate([bucket_deny], Request.make("s3:GetObject", f"{BKT}/k"))


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Resource": "*"},
    {"Effect": "Allow", "Action": "*"},
    {"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"},
    {"Effect": "allow", "Action": "*", "Resource": "*"},
    {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringFancy": {"k": "v"}}},
    {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::${aws:username}"},
])
def test_malformed_or_unsupported_statements_are_refused(statement: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        evaluate([_policy(statement)], Request.make("s3:GetObject", "arn:aws:s3:::${aws:username}", {"k": "v"}))


ABSENT = None


@pytest.mark.parametrize(("operator", "policy", "request_values", "holds"), [
    ("StringEquals", ["owned"], ["owned"], True),
    ("StringEquals", ["owned"], ["Owned"], False),
    ("StringEquals", ["owned", "shared"], ["shared"], True),  # values ORed
    ("StringEquals", ["owned"], ABSENT, False),  # missing key: false
    ("StringEqualsIgnoreCase", ["owned"], ["OWNED"], True),
    ("StringNotEquals", ["111"], ["222"], True),
    ("StringNotEquals", ["111"], ["111"], False),
    ("StringNotEquals", ["111", "222"], ["222"], False),  # values NORed
    ("StringNotEquals", ["111"], ABSENT, True),  # negated, missing key: true
    ("StringNotEqualsIgnoreCase", ["a"], ["A"], False),
    ("StringLike", ["own*"], ["owned"], True),
    ("StringLike", ["ow?ed"], ["owned"], True),
    ("StringLike", ["ow?ed"], ["owwned"], False),
    ("StringLike", ["owned", "shared"], ["shared"], True),
    ("StringLike", ["owned"], ABSENT, False),
    ("StringNotLike", ["own*"], ["shared"], True),
    ("StringNotLike", ["own*"], ABSENT, True),
    ("StringEqualsIfExists", ["a"], ABSENT, True),
    ("StringEqualsIfExists", ["a"], ["b"], False),
    ("StringLikeIfExists", ["a*"], ["ab"], True),
    ("Null", ["true"], ABSENT, True),
    ("Null", ["true"], ["CreateVolume"], False),
    ("Null", ["false"], ["CreateVolume"], True),
    ("Null", ["false"], ABSENT, False),
    ("Bool", ["false"], ["false"], True),
    ("Bool", ["false"], ["true"], False),
    ("Bool", [True], ["true"], True),
    ("Bool", ["true"], ABSENT, False),
    ("BoolIfExists", ["true"], ABSENT, True),
    ("NumericLessThan", ["5"], ["4"], True),
    ("NumericLessThan", ["5"], ["5"], False),
    ("NumericLessThanEquals", ["5"], ["5"], True),
    ("NumericGreaterThan", ["5"], ["6.5"], True),
    ("NumericGreaterThanEquals", ["5"], ["4"], False),
    ("NumericEquals", ["5"], ["5.0"], True),
    ("NumericNotEquals", ["5"], ["5"], False),
    ("NumericLessThan", ["5"], ["not a number"], False),
    ("NumericLessThan", ["5"], ABSENT, False),
    ("DateLessThan", ["2025-01-01T00:00:00Z"], ["2024-06-01T00:00:00Z"], True),
    ("DateGreaterThan", ["2025-01-01T00:00:00Z"], ["1700000000"], False),
    ("IpAddress", ["10.0.0.0/16"], ["10.0.3.4"], True),
    ("NotIpAddress", ["10.0.0.0/16"], ["10.1.3.4"], True),
    ("ArnLike", ["arn:aws:iam::*:role/kubeaws/*"], ["arn:aws:iam::1:role/kubeaws/dev/r"], True),
    ("ArnLike", ["arn:aws:iam::*:role/kubeaws/*"], ["arn:aws:iam::1:user/kubeaws/x"], False),
    ("ArnEquals", ["arn:aws:iam::1:role/r"], ["arn:aws:iam::1:role/r"], True),
    ("ArnEquals", ["arn:aws:iam::1:role/r"], ["not:an:arn"], False),
    ("ArnNotLike", ["arn:aws:iam::*:role/x"], ["arn:aws:iam::1:role/y"], True),
    ("ArnNotEquals", ["arn:aws:iam::1:role/r"], ABSENT, True),
    # multivalued keys and set operators
    ("ForAnyValue:StringEquals", ["kubeaws.io/cluster"], ["Name", "kubeaws.io/cluster"], True),
    ("ForAnyValue:StringEquals", ["kubeaws.io/cluster"], ["Name"], False),
    ("ForAnyValue:StringEquals", ["kubeaws.io/cluster"], ABSENT, False),
    ("ForAnyValue:StringEquals", ["kubeaws.io/cluster"], [], False),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "b"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", ["a"], ABSENT, True),  # missing key: true
    ("ForAllValues:StringEquals", ["a"], [], True),
    ("ForAllValues:StringLike", ["Created*"], ["CreatedBy", "CreatedAt"], True),
    ("ForAllValues:StringNotEquals", ["a"], ["b", "c"], True),
    ("ForAllValues:StringNotEquals", ["a"], ["a", "c"], False),
    ("ForAnyValue:StringNotEquals", ["a"], ["a", "c"], True),
    ("ForAnyValue:StringNotEquals", ["a"], ["a"], False),
    ("StringEquals", ["a"], ["b", "a"], True),  # no set operator: any value
    ("StringNotEquals", ["a"], ["b", "a"], False),
])
def test_condition_operators(operator: str, policy: list[Any], request_values: list[str] | None,
                             holds: bool) -> None:
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in policy]
    assert key_condition_holds(operator, values, request_values) is holds
    # the same through a statement, with the key's name in another case
    context = {} if request_values is None else {"Some:Key": request_values}
    result = evaluate([_policy(_allow(Condition={operator: {"some:key": policy}}))],
                      Request.make("s3:GetObject", BKT, context))
    assert result.allowed is holds


def test_condition_operators_and_keys_are_anded() -> None:
    condition = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["kubeaws.io/cluster"]},
                 "Null": {"ec2:CreateAction": "true"}}
    deny = _policy(_deny(["ec2:CreateTags", "ec2:DeleteTags"], Condition=condition), _allow())

    def decide(context: dict[str, Any]) -> Decision:
        return evaluate([deny], Request.make("ec2:CreateTags", "arn:aws:ec2:r:1:volume/v", context)).decision

    assert decide({"aws:TagKeys": ["Name", "kubeaws.io/cluster"]}) is Decision.EXPLICIT_DENY
    assert decide({"aws:TagKeys": ["kubeaws.io/cluster"], "ec2:CreateAction": "CreateVolume"}) is Decision.ALLOW
    assert decide({"aws:TagKeys": ["Name"]}) is Decision.ALLOW
    two_keys = _policy(_allow(Condition={"StringEquals": {"a": "1", "b": "2"}}))
    assert evaluate([two_keys], Request.make("x:Y", "*", {"a": "1", "b": "2"})).allowed
    assert not evaluate([two_keys], Request.make("x:Y", "*", {"a": "1"})).allowed


def test_the_models_condition_operators_are_all_implemented() -> None:
    """Every operator the model's policies use (control plane, nodes, bucket, IRSA) is one the evaluator
    knows: an unknown one would raise."""
    c = cluster("ha")
    docs = [*c.policies["control-plane"], *c.policies["node"], c.bucket_policy]
    operators = {op for doc in docs for st in iam_eval.statements(doc) for op in (st.get("Condition") or {})}
    assert {"StringEquals", "StringLike", "StringNotEquals", "ForAnyValue:StringLike", "Null", "Bool"} <= operators
    for op in operators:
        key_condition_holds(op, ["x"], ["x"])
