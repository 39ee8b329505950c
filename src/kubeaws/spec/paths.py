"""Field paths of the spec file in its own (camelCase) names: `spec.nodeGroups[1].instanceTypes[0]`, and the
line each one was written on (`located`), so that a problem found after loading (instance types checked
against AWS, the model's own checks) names its line like those found while loading.

Called by `spec.load`, `spec.validate`, `spec.resolve` and the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.spec.models import ClusterSpec

PathPart = str | int
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def format_path(parts: Iterable[PathPart]) -> str:
    """('spec', 'nodeGroups', 1, 'labels', 'a/b') -> 'spec.nodeGroups[1].labels["a/b"]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def parse_path(path: str) -> list[PathPart]:
    """The inverse of `format_path` (best effort: stops at the first part it cannot read)."""
    parts: list[PathPart] = []
    pos = 0
    while pos < len(path):
        m = _PATH_PART.match(path, pos)
        if not m or m.end() == pos:
            break
        name, index, quoted = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else json.loads(quoted))
        pos = m.end()
    return parts


def located(spec: ClusterSpec, problems: list[FieldProblem]) -> SpecError:
    """A SpecError of `problems` naming the spec's file, each problem with the line of its field (or of the
    nearest parent written in the file) when it has none yet."""
    for problem in problems:
        if problem.line is None:
            problem.line = spec.origin.line(parse_path(problem.path))
    ordered = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
    return SpecError(ordered, spec.origin.source)
