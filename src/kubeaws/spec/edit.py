"""Edits of a spec file's text that keep everything else as it is (comments, order, quoting, blank lines):
`set_group_size` writes a node group's `size` (what `kubeaws scale --write-spec` does).

No YAML round-trip library: the file is composed with PyYAML, whose nodes know where they start and end in
the text, and only those spans are rewritten (a value replaced in place; a missing key added as a new line
at the indentation of its siblings, or inside a flow mapping `{...}`). Every edit is checked by loading both
texts: the result must equal the original with exactly the intended change, else `EditError` (edit by hand).
Refused: a size shared through a YAML anchor (changing it would change other groups too), and a group whose
mapping has no single-line key to place a new line after.

Called by the CLI (kubeaws.cli.day2). Pure: text in, text out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from kubeaws.errors import KubeawsError

SIZE_KEYS = ("min", "desired", "max")


class EditError(KubeawsError):
    """The spec text cannot be edited safely by kubeaws: the message says why and what to change by hand."""


def _get(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _walk(node: yaml.Node) -> Iterator[yaml.Node]:
    seen: set[int] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                todo += [k, v]
        elif isinstance(current, yaml.SequenceNode):
            todo += list(current.value)


def _find_group(root: yaml.Node, group: str) -> tuple[int, yaml.MappingNode]:
    spec = _get(root, "spec") if isinstance(root, yaml.MappingNode) else None
    groups = _get(spec[1], "nodeGroups") if spec and isinstance(spec[1], yaml.MappingNode) else None
    if groups is None or not isinstance(groups[1], yaml.SequenceNode):
        raise EditError("the spec has no spec.nodeGroups list")
    for i, item in enumerate(groups[1].value):
        name = _get(item, "name") if isinstance(item, yaml.MappingNode) else None
        if name is not None and isinstance(name[1], yaml.ScalarNode) and name[1].value == group:
            return i, item
    raise EditError(f"the spec has no node group named {group!r}")


class _Text:
    """The text with edits at positions of the ORIGINAL text, applied from the end so none moves another."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, start: int, end: int, new: str) -> None:
        self.edits.append((start, end, new))

    def line_after(self, index: int) -> int:
        """Where the line after the one holding `index` starts (the text's end when it is the last)."""
        at = self.text.find("\n", index)
        return len(self.text) if at < 0 else at + 1

    def result(self) -> str:
        text = self.text
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            if start == len(text) and text and not text.endswith("\n"):
                new = self.newline + new
            text = text[:start] + new + text[end:]
        return text


def _add_key(out: _Text, mapping: yaml.MappingNode, key: str, value: str) -> None:
    """Add `key: value` to a mapping: inside `{...}`, or as a new line under a single-line sibling."""
    if mapping.flow_style:
        close = mapping.end_mark.index - 1
        if out.text[close] != "}":
            raise EditError(f"cannot find the end of the mapping at line {mapping.start_mark.line + 1}")
        if mapping.value:
            out.replace(mapping.value[-1][1].end_mark.index, mapping.value[-1][1].end_mark.index, f", {key}: {value}")
        else:
            out.replace(close, close, f"{key}: {value}")
        return
    for k, v in mapping.value:
        if isinstance(v, yaml.ScalarNode) and v.style in (None, "'", '"') and k.start_mark.line == v.end_mark.line:
            at = out.line_after(v.end_mark.index)
            out.replace(at, at, " " * k.start_mark.column + f"{key}: {value}{out.newline}")
            return
    raise EditError(f"no single-line key to add `{key}` after at line {mapping.start_mark.line + 1}")


def set_group_size(text: str, group: str, size: Mapping[str, int]) -> str:
    """The spec text with `size.<key>` of node group `group` set to each value of `size` (keys min, desired,
    max); everything else unchanged. EditError when that cannot be done safely."""
    unknown = set(size) - set(SIZE_KEYS)
    if unknown:
        raise ValueError(f"unknown size keys {sorted(unknown)}")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        before = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EditError(f"the spec is not valid YAML: {exc}") from None
    if root is None:
        raise EditError("the spec is empty")
    index, item = _find_group(root, group)
    counts: dict[int, int] = {}
    for node in _walk(root):
        counts[id(node)] = counts.get(id(node), 0) + 1
    out = _Text(text)
    found = _get(item, "size")
    if found is None:
        values = ", ".join(f"{k}: {size[k]}" for k in SIZE_KEYS if k in size)
        _add_key(out, item, "size", "{" + values + "}")
    else:
        node = found[1]
        if not isinstance(node, yaml.MappingNode):
            raise EditError(f"spec.nodeGroups[{index}].size is not a mapping (line {node.start_mark.line + 1})")
        if counts[id(node)] > 1:
            raise EditError(f"spec.nodeGroups[{index}].size is shared through a YAML anchor (line "
                            f"{node.start_mark.line + 1}): changing it would change other groups; edit it by hand")
        for key in SIZE_KEYS:
            if key not in size:
                continue
            current = _get(node, key)
            if current is None:
                _add_key(out, node, key, str(size[key]))
                continue
            scalar = current[1]
            if not isinstance(scalar, yaml.ScalarNode) or counts[id(scalar)] > 1:
                raise EditError(f"spec.nodeGroups[{index}].size.{key} (line {scalar.start_mark.line + 1}) is not "
                                "a plain value of its own; edit it by hand")
            out.replace(scalar.start_mark.index, scalar.end_mark.index, str(size[key]))
    new = out.result()
    _check(before, new, index, size)
    return new


def _check(before: Any, new_text: str, index: int, size: Mapping[str, int]) -> None:
    """The edited text must load as the original with only the group's size changed."""
    expected = copy.deepcopy(before)
    group = expected["spec"]["nodeGroups"][index]
    group["size"] = {**(group.get("size") or {}), **size}
    try:
        after = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise EditError(f"editing the spec would break it ({exc}); edit it by hand") from None
    if after != expected:
        raise EditError("editing the spec would change more than the group's size; edit it by hand")
