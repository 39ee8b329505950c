"""One casing in kubeaws' JSON and YAML output: camelCase keys, as the spec file has them.

The engine keeps resource fields and attributes in snake_case (the names its AWS code uses); `camel_keys`
turns them into camelCase where they leave as a document: the plan's diffs and the status report
(kubeaws.engine.types `to_dict`), hence `kubeaws plan|status|apply --output json|yaml`. Maps whose keys are
data, not field names (tags, labels, IAM policy documents, AWS attribute names), are left as they are.
A leaf module: no kubeaws import.
"""

from __future__ import annotations

import re
from typing import Any

#: snake_case field names: lower-case words joined by underscores (tag keys, ARNs and AWS attribute names
#: such as "deregistration_delay.timeout_seconds" never match).
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")

#: Fields whose value is a map keyed by data (tag keys, label keys, policy names, AWS attribute keys, subnet
#: IDs...) or a document of another grammar (IAM JSON): their keys are kept as they are.
DATA_MAPS = frozenset({"tags", "instance_tags", "volume_tags", "labels", "annotations", "taints", "attributes",
                       "inline_policies", "assume_role_policy", "policy", "associations", "data", "manifest",
                       "configuration_values", "parameters"})


def camel(name: str) -> str:
    """"launch_template_version" -> "launchTemplateVersion"; any other name unchanged."""
    if not SNAKE.fullmatch(name):
        return name
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_keys(value: Any) -> Any:
    """`value` with every snake_case key of its maps in camelCase, recursively, except inside DATA_MAPS."""
    if isinstance(value, dict):
        return {camel(k) if isinstance(k, str) else k:
                (v if isinstance(k, str) and k in DATA_MAPS else camel_keys(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [camel_keys(v) for v in value]
    return value
