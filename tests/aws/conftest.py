"""Fixtures and hooks of the real-AWS suite (tests/aws/README.md).

- `_fake_credentials` overrides the autouse fixture of tests/conftest.py, which puts fake AWS credentials in the
  environment for every test: the real-AWS run needs the runner's own. Outside such a run it still applies
  the fake ones, so that the unit tests here can never reach an account either.
- `e2e` (session): the guards (KUBEAWS_AWS_E2E=1, no emulator settings, kubectl on PATH within one minor of the
  clusters, STS GetCallerIdentity with short timeouts), then the kubeaws capability check, the runner's
  address and the availability zones. Any guard that fails skips every real-AWS test with its reason, before
  any other AWS call.
- The terminal summary prints the timings table of the run and writes KUBEAWS_AWS_E2E_REPORT. Under
  pytest-xdist (`-n 2 --dist loadscope`: one worker per cluster class) it works when `tests/aws` is given on the
  command line (the controller then loads this file and shares the run ID with the workers).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from typing import Any

import pytest

from tests.aws import cost
from tests.aws.cluster import E2EContext, aws_config
from tests.aws.report import build_report, format_table, load_runs
from tests.aws.settings import (
    ENV_ADMIN_CIDR,
    ENV_RUN_ID,
    Settings,
    SettingsError,
    caller_identity,
    e2e_requested,
    has_command,
    kubeaws_command,
    kubectl_client_minor,
    kubectl_skew_reason,
    missing_capabilities,
    runner_ip,
    static_skip_reason,
)
from tests.aws.specs import DEV_EXAMPLE, instance_types, load_example, pick_azs

FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


def _requested(config: pytest.Config) -> bool:
    return e2e_requested(str(config.getoption("markexpr", default="") or ""), os.environ)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and _requested(config) and not os.environ.get(ENV_RUN_ID):
        # One run ID for the controller and its xdist workers (they inherit the environment): both clusters
        # carry it in their names and write their timings to the same directory.
        os.environ[ENV_RUN_ID] = secrets.token_hex(3)


@pytest.fixture(scope="session", autouse=True)
def _fake_credentials(request: pytest.FixtureRequest) -> None:
    """See the module docstring: real credentials for a requested real-AWS run, fake ones otherwise."""
    if _requested(request.config):
        return
    os.environ.update(FAKE_ENV)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KUBEAWS_LOCAL"):
        os.environ.pop(name, None)


def _discover_azs(session: Any, region: str, types: set[str], preferred: list[str]) -> list[str]:
    ec2 = session.client("ec2", region_name=region, config=aws_config())
    zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]},
                                                     {"Name": "zone-type", "Values": ["availability-zone"]}])
    available = [z["ZoneName"] for z in zones["AvailabilityZones"]
                 if z.get("OptInStatus", "opt-in-not-required") == "opt-in-not-required"]
    offered: dict[str, set[str]] = {}
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    for instance_type in sorted(types):
        offered[instance_type] = {o["Location"] for page in paginator.paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}])
            for o in page["InstanceTypeOfferings"]}
    return pick_azs(available, offered, preferred)


@pytest.fixture(scope="session")
def e2e() -> E2EContext:
    """The run's shared context, or a skip with the reason the real-AWS suite cannot run here."""
    reason = static_skip_reason(os.environ, shutil.which("kubectl"))
    if reason:
        pytest.skip(reason)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        pytest.fail(str(exc), pytrace=False)
    kubectl = str(shutil.which("kubectl"))
    example = load_example()
    version = str(example["spec"]["kubernetesVersion"])
    try:
        skew = kubectl_skew_reason(kubectl_client_minor(kubectl), version)
    except Exception as exc:
        skew = f"cannot read kubectl's version (`kubectl version --client -o json`): {exc}"
    if skew:
        pytest.skip(skew)
    try:
        account, arn = caller_identity(settings.region)
    except Exception as exc:
        pytest.skip(f"no usable AWS credentials: STS GetCallerIdentity in {settings.region} failed "
                    f"({type(exc).__name__}: {exc}); configure AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    kubeaws = kubeaws_command()
    missing = missing_capabilities(kubeaws)
    if missing:
        pytest.fail("this kubeaws lacks what the real-AWS suite drives (nothing was created):\n  " +
                    "\n  ".join(missing), pytrace=False)
    try:
        admin = settings.admin_cidr or f"{runner_ip()}/32"
    except Exception as exc:
        pytest.fail(f"cannot learn the runner's public address from https://checkip.amazonaws.com ({exc}): set "
                    f"{ENV_ADMIN_CIDR} to it (or to your NAT range)", pytrace=False)
    import boto3

    session = boto3.Session(region_name=settings.region)
    preferred = list(example["spec"]["network"]["availabilityZones"]) if example["spec"]["region"] == \
        settings.region else []
    try:
        azs = _discover_azs(session, settings.region, instance_types(example), preferred)
    except Exception as exc:  # no AZ fits, or the identity may not describe them
        pytest.fail(f"cannot choose 3 availability zones in {settings.region}: {type(exc).__name__}: {exc}",
                    pytrace=False)
    run_id = settings.run_id or os.environ.get(ENV_RUN_ID) or secrets.token_hex(3)
    os.environ.setdefault(ENV_RUN_ID, run_id)
    artifacts = settings.artifacts_dir(run_id)
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "run.json").write_text(json.dumps({
        "runId": run_id, "region": settings.region, "account": account, "caller": arn, "adminCidr": admin,
        "azs": azs, "example": str(DEV_EXAMPLE), "estimatedCostUsd": round(cost.run_total(), 2)}, indent=2) + "\n")
    if has_command(kubeaws, "tunnel"):
        print("note: `kubeaws tunnel` exists now: switch tests/aws to the private API endpoint (TODO in README)")
    return E2EContext(settings=settings, run_id=run_id, artifacts=artifacts, account_id=account, caller_arn=arn,
                      admin_cidr=admin, azs=azs, kubectl=kubectl, kubeaws=kubeaws, session=session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The timings table of the run (and the KUBEAWS_AWS_E2E_REPORT document), from the files the clusters
    wrote, on the controller (or the only process)."""
    if hasattr(config, "workerinput") or not _requested(config):
        return
    run_id = os.environ.get(ENV_RUN_ID)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError:
        return
    if not run_id:
        return
    directory = settings.artifacts_dir(run_id)
    runs = load_runs(directory) if directory.is_dir() else []
    if not runs:
        return
    tr = terminalreporter
    tr.write_sep("=", f"kubeaws real-AWS run {run_id} ({settings.region}): timings")
    for line in format_table(runs).splitlines():
        tr.write_line(line)
    report = build_report(runs, run_id=run_id, region=settings.region)
    spent = 0.0
    for variant, data in report["clusters"].items():
        lifetime = (data.get("facts") or {}).get("lifetimeSeconds")
        scenario = cost.SCENARIO_BY_VARIANT.get(variant)
        if lifetime and scenario:
            data["estimatedCostUsd"] = round(cost.measured(scenario, float(lifetime) / 3600), 2)
            spent += data["estimatedCostUsd"]
    if spent:
        report["estimatedCostUsd"] = round(spent, 2)
        tr.write_line(f"estimated cost of the clusters, from their measured lifetimes: ${spent:.2f} "
                      "(assumptions: tests/aws/README.md)")
    tr.write_line(f"artifacts (spec copies, logs, diagnostics): {directory}")
    for flag in sorted(directory.glob("CLEANUP-REQUIRED-*.txt")):
        tr.write_line(flag.read_text().rstrip(), red=True, bold=True)
    if settings.report_path:
        settings.report_path.parent.mkdir(parents=True, exist_ok=True)
        settings.report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        tr.write_line(f"report written to {settings.report_path}")
