"""What `kubeaws render` shows is what apply sends: for every policy-bearing resource of the model (the roles'
trust and inline policies, the state bucket's policy, the KMS key policy), the rendered document equals the
one the resource kind puts in its AWS request (captured on the moto server: the kinds send the same documents
there, Deny statements included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeaws.aws.session import AwsContext
from kubeaws.model import build
from kubeaws.model.documents import policy_documents, resolver
from kubeaws.resources import registry
from kubeaws.resources.base import Desired
from kubeaws.spec.load import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ACCOUNT = "123456789012"  # moto's account
#: (service, operation, parameter) of the requests that carry a policy document.
CARRIERS = {("s3", "PutBucketPolicy"): "Policy", ("iam", "CreateRole"): "AssumeRolePolicyDocument",
            ("iam", "PutRolePolicy"): "PolicyDocument", ("kms", "CreateKey"): "Policy"}


def _sent(ctx: AwsContext, desired: Desired) -> list[dict[str, Any]]:
    """The policy documents the kind sends while creating `desired`."""
    seen: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = (model.service_model.endpoint_prefix, model.name)
        key = ("s3", model.name) if model.name == "PutBucketPolicy" else key
        if key in CARRIERS and CARRIERS[key] in params:
            seen.append(json.loads(params[CARRIERS[key]]))

    ctx.add_hook("provide-client-params", hook)
    registry.get(desired.kind).create(ctx, desired)
    return seen


@pytest.mark.parametrize("example", ["dev", "eks"])
def test_render_shows_what_apply_sends(example: str, ctx: AwsContext) -> None:
    spec = load_spec(EXAMPLES / f"{example}.yaml")
    graph = build(spec)
    rendered = policy_documents(spec, ACCOUNT, graph)
    value = resolver(graph, ACCOUNT, spec.spec.region)
    bearers = [d for kind in ("IamRole", "Bucket", "KmsKey") for d in graph.of_kind(kind) if not d.brought_id]
    assert bearers
    compared = 0
    for desired in bearers:
        resolved = Desired(desired.kind, desired.name, value(desired.props), tags=dict(desired.tags))
        sent = _sent(ctx, resolved)
        assert sent, f"{desired.key}: no policy document in its requests"
        mine = [doc for path, doc in rendered.items() if Path(path).name.startswith(f"{desired.name}-")]
        for doc in sent:
            assert doc in mine, f"{desired.key} sends a document render does not show: {doc}"
            compared += 1
        assert len(mine) == len(sent), f"{desired.key}: render shows {len(mine)} documents, apply sends {len(sent)}"
    assert compared >= len(bearers)


def test_rendered_bucket_policy_has_the_tls_deny() -> None:
    spec = load_spec(EXAMPLES / "dev.yaml")
    doc = policy_documents(spec, ACCOUNT)["s3/state-bucket-policy.json"]
    tls = [s for s in doc["Statement"] if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert tls and tls[0]["Effect"] == "Deny"
