"""Spec loading: YAML text or file -> validated `ClusterSpec`, or a `SpecError` listing every problem.

Whatever the input, the only exception that leaves this module is `SpecError`: each problem names the field
path in the file's own (camelCase) names, the line, what is wrong and how to fix it. Structural problems
(YAML, types, unknown fields) come from the pydantic models (`spec.field_errors` words them); the semantic,
cross-field checks of `spec.validate` run in the same pass, on the document with the fields in error taken
out (their defaults stand in; a rule about such a field, or naming it, is left for after the fix), so one
report holds every problem. The loaded spec remembers the line of every field (`ClusterSpec.origin`) for
the problems found later (`spec.resolve`, `spec.paths.located`).

Instance types are checked for their form here; whether they exist is `spec.resolve`'s work (the bundled
table, and AWS for a type newer than it). Called by the public API (`kubeaws.load_spec`), the CLI and tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.spec.field_errors import convert, node_line, yaml_type
from kubeaws.spec.models import API_VERSION, KIND, ClusterSpec, Origin
from kubeaws.spec.paths import PathPart, format_path, parse_path
from kubeaws.spec.validate import validate


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
        raise SpecError([FieldProblem("", f"the document is a {yaml_type(data)}, not a mapping",
                                      f"the top level must be a mapping with apiVersion: {API_VERSION}, kind: "
                                      f"{KIND}, metadata and spec", node_line(root, []))], source)
    problems = _duplicate_keys(root)
    spec, field_problems, removed = _validate_fields(data, root)
    problems += field_problems
    if spec is not None:  # the cross-field rules, in the same report
        for problem in validate(spec):
            parts = parse_path(problem.path)
            if any(_overlap(parts, gone) or _names(problem, gone) for gone in removed):
                continue  # about a field in error, or read with its default standing in for it
            problem.line = node_line(root, parts)
            problems.append(problem)
    if problems or spec is None:
        raise SpecError(_sorted(problems), source)
    return spec.with_origin(Origin(source, _lines(root)))


#: How many times a document with field errors is trimmed and validated again (each round takes out at least
#: one field), so that the cross-field rules run on the rest and every problem comes out in one report.
MAX_TRIMS = 20


def _validate_fields(data: dict[str, Any], root: yaml.Node) -> tuple[
        ClusterSpec | None, list[FieldProblem], list[list[PathPart]]]:
    """The spec, pydantic's problems (with lines), and the paths of the fields taken out. With field errors,
    each field in error is taken out of a copy of the document (its default stands in for it) until the rest
    validates: that spec is returned for the cross-field rules, with the problems of the fields taken out.
    None when nothing can stand in (a required field such as metadata.name or spec.region is in error)."""
    try:
        return ClusterSpec.model_validate(data, by_name=False), [], []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems = [convert(err, root) for err in errors]
    trimmed = _unshared(data)
    removed: list[list[PathPart]] = []
    for _ in range(MAX_TRIMS):
        for err in errors:
            gone = _take_out(trimmed, [p for p in err["loc"] if p != "[key]"])
            if gone is None:
                return None, problems, removed
            removed.append(gone)
        try:
            return ClusterSpec.model_validate(trimmed, by_name=False), problems, removed
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
    return None, problems, removed


def _unshared(value: Any) -> Any:
    """A copy of plain YAML data in which no two places share a mapping or list (YAML aliases do)."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def _take_out(doc: dict[str, Any], loc: Sequence[Any]) -> list[PathPart] | None:
    """Take the innermost mapping entry on `loc` out of `doc` (list items stay, so that indices keep naming
    the same items); apiVersion and kind are set right instead. The path taken out, or None if none is left."""
    if list(loc) in (["apiVersion"], ["kind"]):
        doc[str(loc[0])] = API_VERSION if loc[0] == "apiVersion" else KIND
        return [str(loc[0])]
    node: Any = doc
    last: tuple[dict[Any, Any], Any, list[PathPart]] | None = None
    path: list[PathPart] = []
    for part in loc:
        if isinstance(node, dict) and part in node:
            path = [*path, part]
            last = (node, part, path)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path = [*path, part]
            node = node[part]
        else:
            break
    if last is None or last[2] in ([], ["spec"], ["metadata"]):
        return None
    del last[0][last[1]]
    return [p if isinstance(p, int) else str(p) for p in last[2]]


def _overlap(parts: Sequence[PathPart], gone: Sequence[PathPart]) -> bool:
    """One path is the other or holds it."""
    n = min(len(parts), len(gone))
    return list(parts[:n]) == list(gone[:n])


def _names(problem: FieldProblem, gone: Sequence[PathPart]) -> bool:
    """The problem's text names the field taken out (e.g. `overlaps vpc.cidr` when vpc was taken out)."""
    name = next((p for p in reversed(gone) if isinstance(p, str)), "")
    return bool(name) and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", problem.message) is not None


def _lines(root: yaml.Node) -> dict[tuple[PathPart, ...], int]:
    """The line of every field path written in the document (each aliased node once)."""
    lines: dict[tuple[PathPart, ...], int] = {(): root.start_mark.line + 1}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[PathPart, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (*path, str(key_node.value))
                    lines.setdefault(key, key_node.start_mark.line + 1)
                    stack.append((value_node, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault((*path, i), item.start_mark.line + 1)
                stack.append((item, (*path, i)))
    return lines


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


