"""parliament (the IAM policy linter) on every policy document kubeaws renders: clean, except the findings
listed in ALLOWED, each with the reason it must stay (the same reason stands in a comment beside the statement
in src/kubeaws/model/iam.py, and in docs/security.md).

Specs: examples/ha.yaml (kubeadm, every addon), examples/eks.yaml, both modes with every addon on, and kubeadm
with every addon and the Amazon VPC CNI. The
documents are those `kubeaws render` writes (`kubeaws.model.documents`, the ones apply sends).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from parliament import analyze_policy_string

from kubeaws.access import render_artifacts
from kubeaws.spec.load import load_spec, load_spec_text
from kubeaws.spec.models import ClusterSpec
from tests.helpers import merge

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL_ADDONS = {"cloudProviderAWS": {}, "ebsCSI": {}, "metricsServer": {}, "clusterAutoscaler": {}, "rookCeph": {},
              "awsLoadBalancerController": {}}
EKS_ADDONS = {"ebsCSI": {}, "metricsServer": {}, "clusterAutoscaler": {}, "awsLoadBalancerController": {}}


def _example(name: str, addons: dict[str, object] | None = None, cni: str | None = None) -> Callable[[], ClusterSpec]:
    def load() -> ClusterSpec:
        if addons is None:
            return load_spec(EXAMPLES / f"{name}.yaml")
        doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
        extra: dict[str, object] = {"addons": addons, **({"network": {"cni": cni}} if cni else {})}
        return load_spec_text(yaml.safe_dump(merge(doc, {"spec": extra})), f"{name} + addons")
    return load


SPECS = {"ha": _example("ha"), "eks": _example("eks"), "dev-all-addons": _example("dev", ALL_ADDONS),
         "eks-all-addons": _example("eks", EKS_ADDONS),
         "dev-vpc-cni-all-addons": _example("dev", ALL_ADDONS, "aws-vpc-cni")}

#: (finding, policy file (a glob), statement Sid, "?" when parliament names none) -> why it stays.
ALLOWED = {
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "iam/control-plane-policy.json", "?"):
        "iam:CreateServiceLinkedRole, only the ELB service-linked role (by ARN and iam:AWSServiceName): "
        "cloud-provider-aws' first load balancer in an account needs it",
    ("MALFORMED", "iam/*-trust-policy.json", "?"):
        "a trust policy is the role's resource policy: IAM's grammar has no Resource there (parliament lints "
        "identity policies)",
    ("UNKNOWN_FEDERATION_SOURCE", "iam/*-trust-policy.json", "?"):
        "the EKS cluster's own OIDC provider (IRSA), which parliament does not know; the trust is limited to one "
        "service account by :sub and :aud",
    ("RESOURCE_STAR", "kms/secrets-key-policy.json", "EnableIamPolicies"):
        "a key policy's Resource \"*\" is the key itself: AWS' default key policy, handing the key to the "
        "account's IAM policies",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "kms/secrets-key-policy.json", "?"):
        "the same default key policy (kms:PutKeyPolicy and grants stay with the account's administrators)",
    ("RESOURCE_MISMATCH", "iam/control-plane-policy.json", "NetworkLoadBalancerListeners"):
        "ALB listener ARNs are left out on purpose: cloud-provider-aws makes classic ELBs and NLBs, never ALBs; "
        "its NLB listeners carry no tags, so their ARN is the only scope",
    ("RESOURCE_STAR", "iam/*-policy.json", "LoadBalancerController03"):
        "the aws-load-balancer-controller's upstream statement for the certificate, Cognito user pool, WAF ACL "
        "and Shield protection an Ingress names, wherever the user keeps them: Resource \"*\" as upstream has it",
    ("UNKNOWN_ACTION", "iam/*-policy.json", "LoadBalancerController13"):
        "elasticloadbalancing:ModifyIpPools (AWS' Service Authorization Reference has it) is newer than "
        "parliament's action database",
    ("UNKNOWN_CONDITION_FOR_ACTION", "iam/*-policy.json", "LoadBalancerController14"):
        "elasticloadbalancing:CreateAction on AddTags (tagging on create, AWS documents it) is newer than "
        "parliament's database",
    ("RESOURCE_MISMATCH", "iam/node-policy.json", "VpcCniClusterInstances"):
        "the network-interface ARN is left out on purpose: under the kubernetes.io/cluster condition it would "
        "let the nodes attach or change kubeaws' own API ENI; the Amazon VPC CNI's ENIs are allowed by "
        "VpcCniClusterEnis, by the CNI's cluster tag",
    ("RESOURCE_MISMATCH", "iam/control-plane-policy.json", "CreateClusterSnapshots"):
        "the volume ARN is left out on purpose: with it the request tag alone would allow snapshotting any "
        "volume of the account; the source volume is allowed by ClusterVolumes, only when tagged for the cluster",
}


def allowed(finding: tuple[str, str, str, str]) -> tuple[str, str, str] | None:
    """The allow-list entry that covers a finding, or None."""
    issue, path, sid, _ = finding
    for key in ALLOWED:
        if key[0] == issue and fnmatch.fnmatchcase(path, key[1]) and key[2] == sid:
            return key
    return None


def findings(spec: ClusterSpec) -> list[tuple[str, str, str, str]]:
    """(issue, file, Sid, detail) of every parliament finding on the rendered policy documents."""
    out = []
    for path, text in sorted(render_artifacts(spec).items()):
        if not path.endswith(".json"):
            continue
        doc = json.loads(text)
        if "Statement" not in doc:
            continue
        for finding in analyze_policy_string(json.dumps(doc), include_community_auditors=True).findings:
            location = finding.location or {}
            line, column = location.get("line"), location.get("column")
            sid = _sid_at(json.dumps(doc), line, column)
            out.append((finding.issue, path, sid, str(finding.detail)))
    return out


def _sid_at(text: str, line: int | None, column: int | None) -> str:
    """The Sid of the statement a finding points at (parliament gives line/column in the JSON text)."""
    if line != 1 or column is None:
        return "?"
    decoder = json.JSONDecoder()
    best, pos = "?", 0
    while (start := text.find('{"', pos)) != -1 and start <= column:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "Effect" in obj:
            best = str(obj.get("Sid", "?"))
        pos = start + 1
    return best


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parliament_is_clean_on_every_rendered_policy(name: str) -> None:
    found = findings(SPECS[name]())
    assert found or name.startswith("eks"), "kubeadm keeps the two allowed findings: the check must see them"
    unexplained = [f for f in found if allowed(f) is None]
    assert unexplained == []


def test_every_allowed_finding_still_exists() -> None:
    """An allow-list entry whose finding is gone is removed, not kept as a blank cheque."""
    used = {allowed(f) for name in sorted(SPECS) for f in findings(SPECS[name]())}
    assert set(ALLOWED) <= used


def test_parliament_catches_an_unscoped_write() -> None:
    """The check can fail: a write on `*` (as the control-plane policy had) is a finding."""
    doc = {"Version": "2012-10-17", "Statement": [{"Sid": "X", "Effect": "Allow", "Resource": "*",
                                                    "Action": ["ec2:CreateSecurityGroup"]}]}
    issues = [f.issue for f in analyze_policy_string(json.dumps(doc)).findings]
    assert "RESOURCE_STAR" in issues
