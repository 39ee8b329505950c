"""pydantic's validation errors in the spec file's own terms: each one becomes a `FieldProblem` with the field
path in camelCase, the line it was written on, what is wrong and how to fix it (did-you-mean for unknown
fields, the allowed values of an enum, how to quote a value YAML read as a number...).

Called by `spec.load`, which also uses the YAML node helpers (`find_node`, `node_line`).
"""

from __future__ import annotations

import datetime
import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from kubeaws.errors import FieldProblem
from kubeaws.spec.models import API_VERSION, KIND, ClusterSpec
from kubeaws.spec.paths import PathPart, format_path

_VALUE_ERROR_HINTS = {
    "vpc": "keep `cidr` to let kubeaws create a VPC, or `id` (with network.subnets) to use an existing one",
    "size": "make min <= desired <= max",
}
_TYPE_WORDS = {
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "dict_type": "a mapping (key: value pairs)", "model_type": "a mapping (key: value pairs)",
    "model_attributes_type": "a mapping (key: value pairs)", "float_type": "a number", "float_parsing": "a number",
}
_TYPE_HINTS = {
    "string_type": "write a single text value (quote it when in doubt)",
    "float_type": "write a number", "float_parsing": "write a number",
    "model_attributes_type": "write `key: value` pairs (or `{}` for the defaults), or remove the key",
    "list_type": "write a YAML list: `[a, b]`, or one `- item` per line",
    "dict_type": "write `key: value` pairs (or `{}` for an empty mapping)",
    "model_type": "write `key: value` pairs (or `{}` for the defaults), or remove the key",
    "bool_type": "use true or false", "bool_parsing": "use true or false",
}


def yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return f"{type(value).__name__} value"


def find_node(root: yaml.Node, parts: Sequence[PathPart]) -> tuple[yaml.Node | None, int | None]:
    """The node at `parts` (or None) and the best line for it: the key's line, else the deepest parent's."""
    node: yaml.Node | None = root
    line = root.start_mark.line + 1
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                         None)
            if match is None:
                return None, line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None, line
    return node, line


def node_line(root: yaml.Node, parts: Sequence[PathPart]) -> int | None:
    return find_node(root, parts)[1]


def _model_at(parts: Sequence[PathPart]) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `parts` (YAML names), if there is one."""
    tp: Any = ClusterSpec
    for part in parts:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """X | None -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _scalar_text(root: yaml.Node, parts: Sequence[PathPart]) -> str | None:
    node = find_node(root, parts)[0]
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def convert(err: ErrorDetails, root: yaml.Node) -> FieldProblem:
    """One pydantic error -> one FieldProblem in the file's terms."""
    kind = err["type"]
    loc: list[PathPart] = [p for p in err["loc"] if p != "[key]"]
    is_key = "[key]" in err["loc"]
    path = format_path(loc)
    line = node_line(root, loc)
    value = err.get("input")
    ctx = err.get("ctx") or {}
    field = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        return FieldProblem(path, f"unknown field `{field}`", _did_you_mean(field, loc[:-1]), line)
    if kind == "invalid_key" or is_key:
        return FieldProblem(path, f"key `{field}` must be a string", "quote the key", line)
    if kind == "missing":
        if loc == ["apiVersion"]:
            return FieldProblem(path, "apiVersion is missing", f"add `apiVersion: {API_VERSION}`", line)
        if loc == ["kind"]:
            return FieldProblem(path, "kind is missing", f"add `kind: {KIND}`", line)
        return FieldProblem(path, f"required field `{field}` is missing", f"add `{field}: ...`", line)
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = [a for a in allowed if a.lower() == str(value).lower()]
        if loc in (["apiVersion"], ["kind"]):
            hint = f"set `{field}: {allowed[0]}`" if allowed else ""
        elif close:
            hint = f"did you mean `{close[0]}`? (values are case-sensitive)"
        else:
            hint = f"use one of: {', '.join(allowed)}"
        return FieldProblem(path, f"`{value}` is not an allowed value for {field}", hint, line)
    if kind == "value_error":
        message = err["msg"].removeprefix("Value error, ")
        return FieldProblem(path, message, _VALUE_ERROR_HINTS.get(field, "fix the values as described"), line)
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
        hint = _TYPE_HINTS.get(kind, "")
        if value is None:
            hint = "give it a value, or remove the key to use the default"
        elif kind == "string_type" and isinstance(value, int | float | bool | datetime.date):
            text = _scalar_text(root, loc) or str(value)
            hint = f'quote it: `"{text}"` (YAML reads unquoted {text} as a {yaml_type(value).split()[0]})'
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            hint = "use a whole number without quotes, e.g. 3"
        return FieldProblem(path, message, hint, line)
    bound = next((f"{op} {ctx[k]}" for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if k in ctx), None)
    hint = f"use a value {bound}" if bound else ""
    if kind == "too_short":
        hint = f"list at least {ctx.get('min_length', 1)} item(s)"
    elif kind == "too_long":
        hint = f"list at most {ctx.get('max_length')} item(s)"
    return FieldProblem(path, err["msg"], hint, line)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{yaml_type(value).split()[0]} {shown}"


def _did_you_mean(key: str, parent: Sequence[PathPart]) -> str:
    model = _model_at(parent)
    if model is None:
        return "remove it"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    by_lower = {a.lower(): a for a in allowed}
    guess = by_lower.get(key.lower()) or by_lower.get(to_camel(key).lower())
    if guess is None:
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        guess = by_lower[close[0]] if close else None
    if guess is not None:
        return f"did you mean `{guess}`?"
    return f"remove it; fields allowed here: {', '.join(allowed)}"
