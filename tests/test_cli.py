"""The `kubeaws` command line: init/schema, input errors (exit 2, no traceback), the confirmation gate, the
JSON contract, a plan/apply/status/delete round trip against the moto server, and the failure report that
tells how to finish the job.

Runs the typer app in-process (CliRunner: stdin is not a terminal), except one cold subprocess run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from kubeaws import api
from kubeaws.cli.main import app
from kubeaws.spec.load import load_spec
from tests.conftest import EXAMPLES, REGION, REPO

DEV = EXAMPLES / "dev.yaml"
NAME = "dev"  # metadata.name of examples/dev.yaml
runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def both(result: Result) -> str:
    return result.stdout + result.stderr


def owned_vpcs(endpoint: str, cluster: str) -> list[Any]:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION)
    return list(ec2.describe_vpcs(Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": [cluster]}])["Vpcs"])


# -- init / schema ------------------------------------------------------------------------------------------
def test_init_to_stdout() -> None:
    result = invoke("init", "--name", "demo", "--region", "us-east-1")
    assert result.exit_code == 0, both(result)
    assert "apiVersion: kubeaws.io/v1alpha1" in result.stdout
    assert "name: demo" in result.stdout


@pytest.mark.parametrize("mode", ["kubeadm", "eks"])
def test_init_to_file_loads(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "cluster.yaml"
    result = invoke("init", "--name", "demo", "--region", "eu-west-1", "--mode", mode, "-f", str(target))
    assert result.exit_code == 0, both(result)
    spec = load_spec(target)
    assert spec.metadata.name == "demo"
    assert spec.spec.region == "eu-west-1"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "cluster.yaml"
    target.write_text("keep me\n")
    result = invoke("init", "--name", "demo", "--region", "us-east-1", "-f", str(target))
    assert result.exit_code != 0
    assert "--force" in result.stderr
    assert target.read_text() == "keep me\n"
    forced = invoke("init", "--name", "demo", "--region", "us-east-1", "-f", str(target), "--force")
    assert forced.exit_code == 0, both(forced)
    assert "kubeaws.io/v1alpha1" in target.read_text()


def test_schema_prints_json() -> None:
    result = invoke("schema")
    assert result.exit_code == 0, both(result)
    schema = json.loads(result.stdout)
    assert isinstance(schema, dict) and schema.get("properties")


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["plan", "apply", "status", "delete"])
def test_bad_spec_exit_2_with_field_path(tmp_path: Path, command: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: dev}\n"
                    "spec:\n  region: us-east-1\n  controlPlane: {count: two}\n")
    result = invoke(command, "-f", str(path))
    assert result.exit_code == 2, both(result)
    assert "controlPlane.count" in result.stderr
    assert "Traceback" not in both(result)


def test_bad_spec_json_mode_reports_error_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: dev}\n"
                    "spec:\n  region: us-east-1\n  controlPlane: {count: two}\n")
    result = invoke("plan", "-f", str(path), "--output", "json")
    assert result.exit_code == 2
    assert "controlPlane.count" in json.loads(result.stdout)["error"]


def test_missing_file_exit_2(tmp_path: Path) -> None:
    result = invoke("plan", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "not found" in result.stderr and "kubeaws init" in result.stderr
    assert "Traceback" not in both(result)


def test_bad_option_exit_2() -> None:
    result = invoke("plan", "-f", str(DEV), "--output", "xml")
    assert result.exit_code == 2


def test_unreachable_local_endpoint_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    result = invoke("plan", "-f", str(DEV))
    assert result.exit_code == 1, both(result)
    assert "Traceback" not in both(result)
    assert "nothing answers at http://127.0.0.1:9" in result.stderr


def test_no_credentials_is_a_short_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = invoke("status", "-f", str(DEV))
    assert result.exit_code == 1, both(result)
    assert "no AWS credentials" in result.stderr and "--local" in result.stderr
    assert "Traceback" not in both(result)


# -- against the moto server ------------------------------------------------------------------------------
def test_apply_without_yes_and_without_tty_refuses(endpoint: str) -> None:
    result = invoke("apply", "-f", str(DEV))
    assert result.exit_code == 1, both(result)
    assert "--yes" in result.stderr
    assert "Will create" in result.stdout  # the plan was shown
    assert owned_vpcs(endpoint, NAME) == []


def test_plan_json_contract(endpoint: str) -> None:
    result = invoke("plan", "-f", str(DEV), "--output", "json")
    assert result.exit_code == 0, both(result)
    data = json.loads(result.stdout)
    assert data["cluster"] == NAME
    assert set(data["summary"]) == {"create", "update", "replace", "delete", "noop"}
    assert data["changes"] and data["summary"]["create"] == len(data["changes"])
    assert {"action", "kind", "name", "id", "diff"} <= set(data["changes"][0])


def test_round_trip(endpoint: str) -> None:
    plan = invoke("plan", "-f", str(DEV))
    assert plan.exit_code == 0, both(plan)
    assert "Will create" in plan.stdout

    applied = invoke("apply", "-f", str(DEV), "--yes")
    assert applied.exit_code == 0, both(applied)
    assert "Apply complete" in applied.stdout
    assert " created" in applied.stdout
    assert len(owned_vpcs(endpoint, NAME)) == 1

    status = invoke("status", "-f", str(DEV))
    assert status.exit_code == 0, both(status)
    assert "in sync" in status.stdout
    assert "Vpc" in status.stdout

    status_json = json.loads(invoke("status", "-f", str(DEV), "--output", "json").stdout)
    assert status_json["inSync"] is True and status_json["resources"]

    again = invoke("plan", "-f", str(DEV))
    assert "No changes" in again.stdout
    noop = invoke("apply", "-f", str(DEV))  # no --yes needed: nothing to do
    assert noop.exit_code == 0, both(noop)
    assert "Nothing to apply" in noop.stdout

    refused = invoke("delete", "-f", str(DEV))
    assert refused.exit_code == 1 and len(owned_vpcs(endpoint, NAME)) == 1

    deleted = invoke("delete", "-f", str(DEV), "--yes", "--output", "json")
    assert deleted.exit_code == 0, both(deleted)
    result = json.loads(deleted.stdout)
    assert result["ok"] and result["operation"] == "delete"
    assert {r["action"] for r in result["resources"]} == {"delete"}
    assert owned_vpcs(endpoint, NAME) == []

    gone = invoke("status", "-f", str(DEV))
    assert gone.exit_code == 0 and "No resources found" in gone.stdout


def test_failed_apply_prints_the_finishing_command(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_subnets(model: Any, **_: Any) -> None:
        if model.name == "CreateSubnet":
            raise ClientError({"Error": {"Code": "InsufficientFreeAddressesInSubnet", "Message": "injected"}},
                              model.name)

    real = api.connect

    def connect(spec: Any, **kw: Any) -> Any:
        ctx = real(spec, **kw)
        ctx.add_hook("before-call", refuse_subnets)
        return ctx

    monkeypatch.setattr(api, "connect", connect)
    result = invoke("apply", "-f", str(DEV), "--yes")
    assert result.exit_code == 1, both(result)
    out = both(result)
    assert "Traceback" not in out
    assert "Apply incomplete" in out
    assert "InsufficientFreeAddressesInSubnet" in out
    assert f"kubeaws apply -f {DEV}" in out
    monkeypatch.setattr(api, "connect", real)
    finished = invoke("apply", "-f", str(DEV), "--yes")
    assert finished.exit_code == 0, both(finished)


def test_cold_cli_plan_subprocess(endpoint: str) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    proc = subprocess.run([sys.executable, "-m", "kubeaws.cli.main", "plan", "-f", str(DEV), "--output", "json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cluster"] == NAME


def test_help_does_not_import_boto3() -> None:
    code = "import sys; from kubeaws.cli.main import app; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
