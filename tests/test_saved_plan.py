"""Saved plans (engine.saved_plan, `kubeaws plan --out` / `kubeaws apply --plan`) on the moto server: the
reviewed plan is applied as is; a change of the spec or of AWS between plan and apply is refused (exit 1,
the differences listed, nothing changed); a plan for another account or region is refused; an unreadable or
hand-edited file is bad input (exit 2). And the Python API: `apply(plan=Plan)` never re-plans silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner, Result

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.cli.main import app
from kubeaws.engine.saved_plan import FORMAT, SavedPlan, StalePlanError, Target
from tests.conftest import EXAMPLES, REGION, make_ctx

DEV = EXAMPLES / "dev.yaml"
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def both(result: Result) -> str:
    return result.stdout + result.stderr


def spec_file(tmp_path: Path, extra_tag: str | None = None) -> Path:
    """examples/dev.yaml, with one more cluster tag when asked (a change to every resource's tags)."""
    text = DEV.read_text()
    if extra_tag:
        text = text.replace("    cost: dev", f"    cost: dev\n    {extra_tag}: yes-{extra_tag}")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def ec2(endpoint: str) -> Any:
    return boto3.client("ec2", endpoint_url=endpoint, region_name=REGION)


def owned_vpcs(endpoint: str) -> list[Any]:
    return list(ec2(endpoint).describe_vpcs(Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}])["Vpcs"])


def plan_to(spec: Path, out: Path) -> Result:
    result = invoke("plan", "-f", str(spec), "--out", str(out))
    assert result.exit_code == 0, both(result)
    return result


@pytest.fixture
def applied(endpoint: str, tmp_path: Path) -> tuple[Path, AwsContext]:
    """examples/dev.yaml applied on moto; the spec file and a context on it."""
    spec = spec_file(tmp_path)
    ctx = make_ctx(endpoint)
    result = api.apply(api.load_spec(spec), ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    return spec, ctx


def test_the_reviewed_plan_is_applied(endpoint: str, tmp_path: Path) -> None:
    spec, saved = spec_file(tmp_path), tmp_path / "plan.json"
    shown = plan_to(spec, saved)
    assert "Will create" in shown.stdout and f"--plan {saved}" in shown.stderr
    doc = json.loads(saved.read_text())
    assert doc["format"] == FORMAT and doc["cluster"] == "dev" and doc["target"]["region"] == REGION
    assert doc["summary"]["create"] == len(doc["changes"]) > 30
    # digests only: no user data, no state-object content, no value of any field
    assert all(set(c) == {"action", "id", "digest"} and c["digest"].startswith("sha256:")
               for c in doc["changes"].values())
    assert "bash" not in saved.read_text() and "10.0.0.0/16" not in saved.read_text()

    applied = invoke("apply", "-f", str(spec), "--plan", str(saved))  # no --yes: the plan was reviewed
    assert applied.exit_code == 0, both(applied)
    assert "Apply complete" in applied.stdout
    assert len(owned_vpcs(endpoint)) == 1
    assert api.plan(api.load_spec(spec), make_ctx(endpoint)).pending == 0

    again = invoke("apply", "-f", str(spec), "--plan", str(saved))  # the cluster moved on: that plan is done
    assert again.exit_code == 1
    assert "removed: create Vpc/main" in again.stderr


def test_a_spec_change_since_the_plan_is_refused(endpoint: str, tmp_path: Path) -> None:
    spec, saved = spec_file(tmp_path), tmp_path / "plan.json"
    plan_to(spec, saved)
    spec_file(tmp_path, extra_tag="owner")
    refused = invoke("apply", "-f", str(spec), "--plan", str(saved))
    assert refused.exit_code == 1, both(refused)
    assert "spec: the spec file changed since the plan" in refused.stderr
    assert owned_vpcs(endpoint) == []  # nothing was made, the state bucket (the lock's home) neither
    assert not boto3.client("s3", endpoint_url=endpoint, region_name=REGION).list_buckets()["Buckets"]


def test_aws_changes_since_the_plan_are_refused(applied: tuple[Path, AwsContext], endpoint: str,
                                                tmp_path: Path) -> None:
    _, ctx = applied
    changed = spec_file(tmp_path, extra_tag="owner")
    saved = tmp_path / "plan.json"
    plan_to(changed, saved)
    assert SavedPlan.read(saved).summary["update"] > 10

    # someone removes a tag kubeaws owns from a subnet: the subnet's update is no longer the reviewed one
    subnet = ec2(endpoint).describe_subnets(Filters=[{"Name": "tag:kubeaws.io/cluster", "Values": ["dev"]}])
    subnet_id = sorted(s["SubnetId"] for s in subnet["Subnets"])[0]
    ec2(endpoint).delete_tags(Resources=[subnet_id], Tags=[{"Key": "team"}])
    refused = invoke("apply", "-f", str(changed), "--plan", str(saved))
    assert refused.exit_code == 1, both(refused)
    assert "changed: Subnet/" in refused.stderr and "with other values" in refused.stderr
    assert "spec:" not in refused.stderr

    # someone deletes a resource: it is created again by a fresh plan, not by this one
    plan_to(changed, saved)
    bastion = [o for o in api.status(api.load_spec(changed), ctx).resources if o.kind == "Instance"
               and o.logical_key == "Instance/bastion"]
    ec2(endpoint).terminate_instances(InstanceIds=[bastion[0].id])
    refused = invoke("apply", "-f", str(changed), "--plan", str(saved))
    assert refused.exit_code == 1, both(refused)
    assert "Instance/bastion: update -> create" in refused.stderr


def test_a_resource_made_since_the_plan_is_refused(endpoint: str, tmp_path: Path) -> None:
    """Someone else applied between plan and apply: what the plan would create exists now."""
    spec, saved = spec_file(tmp_path), tmp_path / "plan.json"
    plan_to(spec, saved)
    assert api.apply(api.load_spec(spec), make_ctx(endpoint)).ok
    refused = invoke("apply", "-f", str(spec), "--plan", str(saved), "--output", "json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["error"] if refused.stdout.strip() else refused.stderr
    assert "removed: create Subnet/" in str(error)


def test_a_plan_for_another_account_or_region_is_refused(endpoint: str, tmp_path: Path) -> None:
    spec, saved = spec_file(tmp_path), tmp_path / "plan.json"
    plan_to(spec, saved)
    real = SavedPlan.read(saved)
    for target, words in ((Target(REGION, "210987654321", "aws"), "the plan is for account 210987654321"),
                          (Target("eu-west-1", real.target.account, "aws"), "the plan is for eu-west-1")):
        real.target = target
        real.write(saved)  # a plan written (and sealed) for another target
        refused = invoke("apply", "-f", str(spec), "--plan", str(saved))
        assert refused.exit_code == 1, both(refused)
        assert words in refused.stderr
    assert owned_vpcs(endpoint) == []


@pytest.mark.parametrize("damage", ["not json", "edited", "truncated", "other format", "missing"])
def test_a_corrupt_or_edited_plan_file_is_bad_input(endpoint: str, tmp_path: Path, damage: str) -> None:
    spec, saved = spec_file(tmp_path), tmp_path / "plan.json"
    plan_to(spec, saved)
    text = saved.read_text()
    if damage == "not json":
        saved.write_text("terraform plan output\n")
    elif damage == "edited":  # a hand edit: drop a change from the reviewed plan
        doc = json.loads(text)
        doc["changes"].pop("Instance/bastion")
        saved.write_text(json.dumps(doc))
    elif damage == "truncated":
        saved.write_text(text[: len(text) // 2])
    elif damage == "other format":
        saved.write_text(json.dumps({"format_version": "1.2", "planned_values": {}}))
    else:
        saved.unlink()
    refused = invoke("apply", "-f", str(spec), "--plan", str(saved))
    assert refused.exit_code == 2, both(refused)
    assert "Traceback" not in both(refused)
    expected = {"not json": "not a saved plan", "edited": "was changed after", "truncated": "not a saved plan",
                "other format": "not a saved plan of this kubeaws", "missing": "plan file not found"}[damage]
    assert expected in refused.stderr and "kubeaws plan" in refused.stderr
    assert owned_vpcs(endpoint) == []


def test_python_api_never_replans_a_given_plan_silently(applied: tuple[Path, AwsContext], endpoint: str,
                                                        tmp_path: Path) -> None:
    _, ctx = applied
    changed = api.load_spec(spec_file(tmp_path, extra_tag="owner"))
    reviewed = api.plan(changed, ctx)
    assert reviewed.pending
    vpc = owned_vpcs(endpoint)[0]["VpcId"]
    ec2(endpoint).delete_tags(Resources=[vpc], Tags=[{"Key": "cost"}])  # AWS changes after the review
    with pytest.raises(StalePlanError) as refused:
        api.apply(changed, ctx, plan=reviewed)
    assert "changed: Vpc/main: update with other values" in str(refused.value)
    assert refused.value.differences

    current = api.plan(changed, ctx)
    result = api.apply(changed, ctx, plan=current)  # unchanged since its review: applied as is
    assert result.ok and {e.key for e in result.done} == {c.key for c in current.changes if c.action != "noop"}
    assert api.plan(changed, ctx).pending == 0
