"""JSON Schema of the spec file, for editors (e.g. the YAML language server) and CI linting.

Generated from the pydantic models, so it always matches what `spec.load` accepts structurally (the
semantic checks of `spec.validate` are not expressible in it). Called by the CLI and the tests.
"""

from __future__ import annotations

from typing import Any

from kubeaws.spec.models import API_VERSION, ClusterSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://kubeaws.io/schemas/v1alpha1/cluster.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a kubeaws Cluster spec, keys in the file's camelCase names."""
    schema = ClusterSpec.model_json_schema(by_alias=True)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": f"kubeaws Cluster ({API_VERSION})",
        "description": "One YAML file describing a Kubernetes cluster on AWS (kubeadm on EC2 or EKS).",
    }
