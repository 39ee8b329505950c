"""`--parallelism N` on apply, delete and rollout (issue #14 item 4): accepted, bounded, and passed through: the
engine's pool for apply and delete (`max_workers`), the context's in-flight cap for a rollout (and for the roll
after an apply). The commands run in-process against the moto server; the engine calls themselves are
recorded, not run (what they do with `max_workers` is tests/test_engine.py's and test_delete_graph.py's)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.cli import rollout as rollout_cli
from kubeaws.cli.common import DEFAULT_PARALLELISM
from kubeaws.cli.main import app
from kubeaws.engine.types import ApplyResult
from tests.conftest import EXAMPLES

DEV = str(EXAMPLES / "dev.yaml")
runner = CliRunner()


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def fake_apply(spec: Any, ctx: AwsContext, **kw: Any) -> ApplyResult:
        got["apply"] = kw["max_workers"]
        return ApplyResult(cluster=spec.metadata.name, operation="apply")

    def fake_delete(spec: Any, ctx: AwsContext, **kw: Any) -> ApplyResult:
        got["delete"] = kw["max_workers"]
        return ApplyResult(cluster=spec.metadata.name, operation="delete")

    def fake_roll(out: Any, spec: Any, ctx: AwsContext, *args: Any, **kw: Any) -> dict[str, Any]:
        got["rollout"] = ctx.limiter.concurrency
        return {}

    monkeypatch.setattr(api, "apply", fake_apply)
    monkeypatch.setattr(api, "delete", fake_delete)
    monkeypatch.setattr(rollout_cli, "execute", fake_roll)
    return got


@pytest.mark.parametrize("given", [None, "3"])
def test_apply_delete_and_rollout_pass_it_through(ctx: AwsContext, seen: dict[str, Any], given: str | None) -> None:
    extra = ["--parallelism", given] if given else []
    want = int(given) if given else DEFAULT_PARALLELISM
    result = runner.invoke(app, ["apply", "-f", DEV, "--yes", *extra])
    assert result.exit_code == 0, result.output
    assert seen["apply"] == want and seen["rollout"] == want  # the roll after the apply too
    seen.clear()
    result = runner.invoke(app, ["rollout", "-f", DEV, "--yes", *extra])
    assert result.exit_code == 0, result.output
    assert seen["rollout"] == want
    # something to delete: a VPC of the cluster
    ctx.call("ec2", "create_vpc", CidrBlock="10.9.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "kubeaws.io/cluster", "Value": "dev"}]}])
    result = runner.invoke(app, ["delete", "-f", DEV, "--yes", *extra])
    assert result.exit_code == 0, result.output
    assert seen["delete"] == want


@pytest.mark.parametrize("command", ["apply", "delete", "rollout"])
@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_out_of_range_is_bad_input(command: str, value: str) -> None:
    result = runner.invoke(app, [command, "-f", DEV, "--parallelism", value])
    assert result.exit_code == 2
    assert "--parallelism" in result.output and "Traceback" not in result.output
