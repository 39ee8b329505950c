"""Spec loading: YAML text or file -> validated `ClusterSpec`, or a `SpecError` listing every problem.

Whatever the input, the only exception that leaves this module is `SpecError`: each problem names the field
path in the file's own (camelCase) names, the line, what is wrong and how to fix it. Structural problems
(YAML, types, unknown fields) come from the pydantic models; when there are none, the semantic checks of
`spec.validate` run. Called by the public API (`kubeaws.load_spec`), the CLI and the tests.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.spec.models import API_VERSION, KIND, ClusterSpec
from kubeaws.spec.validate import PathPart, format_path, parse_path, validate

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


def load_spec(path: str | os.PathLike[str]) -> ClusterSpec:
    """Read and validate the spec file at `path`."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([FieldProblem("", f"the file is not UTF-8 text ({exc.reason})",
                                      "save the file as UTF-8")], source) from None
    except OSError as exc:
        raise SpecError([FieldProblem("", f"cannot read the file: {exc.strerror or exc}",
                                      "check the path and its permissions")], source) from None
    return load_spec_text(text, source)


def load_spec_text(text: str, source: str = "<string>") -> ClusterSpec:
    """Parse and validate spec YAML. Raises SpecError (with every problem found) and nothing else; every
    problem is bounded in size (`bounded`) whatever the input."""
    try:
        return _load(text, source)
    except SpecError as exc:
        raise SpecError(bounded(exc.problems), source) from None
    except Exception as exc:  # the promise: SpecError only, whatever the input
        raise SpecError(bounded([FieldProblem("", f"cannot read the spec: {type(exc).__name__}: {exc}",
                                              "check that the file is a kubeaws Cluster spec (see `kubeaws "
                                              "init`)")]), source) from exc


def _load(text: str, source: str) -> ClusterSpec:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise SpecError([FieldProblem("", f"expected YAML text, got {type(text).__name__}")], source)
    root, data = _parse_yaml(text, source)
    if root is None or data is None:
        raise SpecError([FieldProblem("", "the spec is empty", f"start from `kubeaws init`: apiVersion: "
                                      f"{API_VERSION}, kind: {KIND}, metadata, spec")], source)
    if not isinstance(data, dict):
        raise SpecError([FieldProblem("", f"the document is a {_yaml_type(data)}, not a mapping",
                                      f"the top level must be a mapping with apiVersion: {API_VERSION}, kind: "
                                      f"{KIND}, metadata and spec", _line(root, []))], source)
    problems = _duplicate_keys(root)
    try:
        spec = ClusterSpec.model_validate(data, by_name=False)
    except ValidationError as exc:
        problems += [_convert(err, root) for err in exc.errors(include_url=False)]
        raise SpecError(_sorted(problems), source) from None
    for problem in validate(spec):
        problem.line = _line(root, parse_path(problem.path))
        problems.append(problem)
    if problems:
        raise SpecError(_sorted(problems), source)
    return spec


#: Bounds of what a problem shows, whatever the input: a value quoted in a message (between backticks),
#: the field path, the message and the hint; and how many problems are listed.
VALUE_LIMIT = 200
PATH_LIMIT = 300
TEXT_LIMIT = 700
MAX_PROBLEMS = 50
#: C0/C1 control characters and the bidirectional overrides that can disguise text on a terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_QUOTED = re.compile(r"`([^`]*)`")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _clean(text: str, limit: int) -> str:
    """One printable line of at most `limit` characters (+ an ellipsis), each quoted value cut to VALUE_LIMIT."""
    text = _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
    text = _QUOTED.sub(lambda m: f"`{_cut(m[1], VALUE_LIMIT)}`", text)
    return _cut(text, limit)


def bounded(problems: list[FieldProblem]) -> list[FieldProblem]:
    """The problems with printable, size-bounded texts; past MAX_PROBLEMS, one line says how many more."""
    out = [FieldProblem(_clean(p.path, PATH_LIMIT), _clean(p.message, TEXT_LIMIT), _clean(p.hint, TEXT_LIMIT),
                        p.line) for p in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        rest = problems[MAX_PROBLEMS:]
        out.append(FieldProblem("", f"{len(rest)} more problem(s) not shown",
                                "fix the problems above and load the spec again", rest[0].line))
    return out


#: libyaml's composer recurses in C without a depth limit: a document nested ~20,000 levels deep crashes the
#: process. Documents that might nest deeper than this go to the pure-Python parser (RecursionError, caught).
C_PARSER_MAX_DEPTH = 1000


def _nesting_bound(text: str) -> int:
    """An upper bound of the document's nesting depth: a level opens on a new line or with `[`, `{`, `-`, `?`."""
    return text.count("\n") + 1 + sum(text.count(c) for c in "[{-?")


#: Deeper than any spec (which nests about 6 levels): rejected while parsing, before anything recurses.
MAX_DEPTH = 64


class _Constructing:
    """A value that a tag cannot make (`!!float abc`, `!!timestamp x`) is a YAML error at the value's line,
    not a raw ValueError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except yaml.YAMLError:
            raise
        except Exception as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            shown = f"`{node.value}`" if isinstance(node, yaml.ScalarNode) else "the value"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} cannot be read as {tag} ({type(exc).__name__}: {exc})",
                node.start_mark) from None


class _Loader(_Constructing, yaml.SafeLoader):
    pass


_CLoader: type[yaml.SafeLoader] | None = (
    type("_CLoader", (_Constructing, yaml.CSafeLoader), {}) if hasattr(yaml, "CSafeLoader") else None)


def _check_depth(loader: Any, source: str) -> None:
    """Walk the parser's events (no recursion) and reject a document nested deeper than MAX_DEPTH."""
    depth = 0
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError([FieldProblem("", f"the YAML is nested more than {MAX_DEPTH} levels deep",
                                              "flatten the document: a cluster spec nests a few levels",
                                              event.start_mark.line + 1 if event.start_mark else None)],
                                source)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader: Any = None
    try:
        # libyaml parses ~8x faster than the pure-Python parser, with the same marks for error lines.
        use_c = _CLoader is not None and _nesting_bound(text) <= C_PARSER_MAX_DEPTH
        loader_class = _CLoader if use_c and _CLoader is not None else _Loader
        scanner = loader_class(text)
        try:
            _check_depth(scanner, source)
        finally:
            scanner.dispose()
        loader = loader_class(text)
        root = loader.get_single_node()
        if root is not None:
            _check_expansion(root, source)
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(exc, text)], source) from None
    except RecursionError:
        raise SpecError([FieldProblem("", "the YAML is nested too deeply", "flatten the document")],
                        source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def _yaml_problem(exc: yaml.YAMLError, text: str) -> FieldProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    if line is None and isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
    message = str(getattr(exc, "problem", None) or exc).strip().splitlines()[0]
    hint = "fix the YAML at this line (indentation, ':' after keys, closing quotes and brackets)"
    if "expected a single document" in str(exc):
        message, hint = "the file holds several YAML documents", "keep one document (one cluster) per file"
    elif "constructor for the tag" in message or " cannot be read as !!" in message:
        hint = "remove the tag: kubeaws reads plain YAML (strings, numbers, lists, mappings)"
    elif isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        message = f"the file contains a character YAML does not allow ({shown})"
        hint = "remove control characters; save the file as UTF-8 text"
    return FieldProblem("", f"YAML syntax error: {message}", hint, line)


def _check_expansion(root: yaml.Node, source: str, limit: int = 100_000) -> None:
    """Reject aliases that refer to themselves or expand to a huge document (an "alias bomb")."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError([FieldProblem("", "a YAML alias refers to itself", "remove the recursive alias",
                                          node.start_mark.line + 1)], source)
        active.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1 + sum(size(child) for child in children)
        active.discard(key)
        if total > limit:  # the smallest node over the limit: where the aliases pile up
            raise SpecError([FieldProblem("", f"the YAML expands to more than {limit} values",
                                          "use fewer aliases; a cluster spec is small",
                                          node.start_mark.line + 1)], source)
        sizes[key] = total
        return total

    size(root)


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return f"{type(value).__name__} value"


def _sorted(problems: list[FieldProblem]) -> list[FieldProblem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


def _duplicate_keys(root: yaml.Node) -> list[FieldProblem]:
    """YAML lets a later key silently win over an earlier one; report it instead."""
    problems: list[FieldProblem] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[PathPart]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                if key and key in keys:
                    problems.append(FieldProblem(format_path([*path, key]), f"`{key}` appears twice",
                                                 "keep one of them (YAML uses the last one)",
                                                 key_node.start_mark.line + 1))
                keys.add(key)
                stack.append((value_node, [*path, key]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*path, i]) for i, item in enumerate(node.value))
    return problems


def _find(root: yaml.Node, parts: Sequence[PathPart]) -> tuple[yaml.Node | None, int | None]:
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


def _line(root: yaml.Node, parts: Sequence[PathPart]) -> int | None:
    return _find(root, parts)[1]


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
    node = _find(root, parts)[0]
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _convert(err: ErrorDetails, root: yaml.Node) -> FieldProblem:
    """One pydantic error -> one FieldProblem in the file's terms."""
    kind = err["type"]
    loc: list[PathPart] = [p for p in err["loc"] if p != "[key]"]
    is_key = "[key]" in err["loc"]
    path = format_path(loc)
    line = _line(root, loc)
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
            hint = f'quote it: `"{text}"` (YAML reads unquoted {text} as a {_yaml_type(value).split()[0]})'
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
    return f"{_yaml_type(value).split()[0]} {shown}"


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
