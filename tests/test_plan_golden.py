"""Plan text golden files. Regenerate with KUBEAWS_UPDATE_GOLDEN=1 (exactly "1": `helpers.update_golden`) and
review the diff like code.

AWS IDs (vpc-..., sg-..., ami-...) are replaced by stable placeholders before comparison.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.engine.render import plan_text
from tests.helpers import make_spec, update_golden

GOLDEN = Path(__file__).parent / "golden"
ID = re.compile(r"\b(vpc|subnet|igw|nat|eipalloc|rtb|sg|i|ami|rtbassoc|eni|lt|vol)-[0-9a-f]{8,17}\b")
#: Content hashes of launch templates cover resolved IDs, so they differ between runs too.
HASH = re.compile(r"\b[0-9a-f]{32}\b")


def normalize(text: str) -> str:
    seen: dict[str, str] = {}
    per_prefix: dict[str, int] = {}

    def repl(m: re.Match[str]) -> str:
        if m.group(0) not in seen:
            n = per_prefix.get(m.group(1), 0)
            per_prefix[m.group(1)] = n + 1
            seen[m.group(0)] = f"{m.group(1)}-<{n}>"
        return seen[m.group(0)]

    return HASH.sub("<md5>", ID.sub(repl, text))


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    text = normalize(text)
    if update_golden():
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with KUBEAWS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from golden (KUBEAWS_UPDATE_GOLDEN=1 to regenerate)"


def test_create_plan_text(ctx: AwsContext) -> None:
    spec = make_spec(access={"bastion": {"elasticIP": True}})
    check("plan_create.txt", plan_text(api.plan(spec, ctx)))


def test_change_plan_text(ctx: AwsContext) -> None:
    result = api.apply(make_spec(), ctx)
    assert result.ok
    changed = make_spec(network={"natGateway": "perAZ", "cni": "flannel"}, access={"bastion": {"enabled": False}},
                        tags={"team": "dsp"})
    check("plan_change.txt", plan_text(api.plan(changed, ctx)))


def test_plan_json_contract(ctx: AwsContext) -> None:
    doc = api.plan(make_spec(), ctx).to_dict()
    assert set(doc) == {"cluster", "changes", "summary", "warnings", "notes", "rollout"}
    # Nothing exists yet: nothing left alone, nothing rolls; the addons' objects are left out on the emulator.
    assert [n for n in doc["notes"] if not n.startswith("local emulator: ")] == [] and doc["rollout"] == []
    assert any("KubernetesObject(s) skipped" in n for n in doc["notes"])
    assert doc["cluster"] == "dev"
    assert set(doc["summary"]) == {"create", "update", "replace", "delete", "noop"}
    for change in doc["changes"]:
        assert set(change) == {"action", "kind", "name", "id", "diff", "reasons"}
        assert change["action"] in doc["summary"]
        for value in change["diff"].values():
            assert isinstance(value, list) and len(value) == 2
    json.dumps(doc)  # serializable as is
    assert doc["summary"]["create"] == len(doc["changes"])


def test_only_one_rewrites_goldens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """KUBEAWS_UPDATE_GOLDEN=0 (or any value but 1) compares: a stale golden fails instead of being rewritten."""
    golden = tmp_path / "plan.txt"
    golden.write_text("old\n")
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN", tmp_path)
    for value in ("0", "", "yes", "true"):
        monkeypatch.setenv("KUBEAWS_UPDATE_GOLDEN", value)
        with pytest.raises(AssertionError, match="differs from golden"):
            check("plan.txt", "new\n")
        assert golden.read_text() == "old\n"
    monkeypatch.setenv("KUBEAWS_UPDATE_GOLDEN", "1")
    check("plan.txt", "new\n")
    assert golden.read_text() == "new\n"
