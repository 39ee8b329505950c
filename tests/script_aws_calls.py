"""The AWS CLI calls of a rendered bash boot script, and the IAM permissions each one needs.

Used by tests/test_bootstrap_iam.py, which checks every call against the policy of the instance role that
runs the script. Three parts:

1. Extraction: a small bash lexer (quotes, backslash-continued lines, comments, here-documents, `$(...)`,
   backticks, process substitutions, functions) that lists every `aws <service> <operation> ...` command,
   wherever it is: at top level, in a function (`s3_get() { aws s3 cp ...; }`), or inside a command
   substitution (`VOLUME_ID="$(aws ec2 describe-volumes ...)"`). `grep_count` is the naive count the tests
   compare it with, so that no call is skipped silently.
2. Values: `ShellValues` expands a word of the script (`"s3://$BUCKET/$1"`) into the strings it can take: a
   variable assigned once in the script expands to that value, a function's positional parameter to the
   arguments of every call of that function, and anything else (values only known on the instance) must come
   from the caller's table, or the expansion fails loudly.
3. Permissions: `parse_call` checks the command line against the CLI's own definitions (botocore's service
   models for `aws <service> <operation>`: the CLI operation is the kebab-case of the API operation, every
   option an input member or a global option; awscli's argument tables for the high-level `aws s3` commands)
   and `accesses` turns a call into the IAM requests it makes: action, resource ARN (one request per resource
   the action authorizes) and request context (resource tags, S3 condition keys).

Resource-level permissions are encoded only for the actions the scripts use, each from the Service Authorization
Reference; an action nobody encoded fails loudly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import product
from typing import Any

import botocore.session
from botocore import xform_name

# ---------------------------------------------------------------------------------------------------------
# 1. Extraction
# ---------------------------------------------------------------------------------------------------------

OPERATORS = ("&&", "||", ";;", "|&", ";", "&", "|", "(", ")")
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
REDIRECTION = re.compile(r"^(\d*|&)(>>?|<|>&|<&|>\|)")


@dataclass(frozen=True)
class Word:
    """A shell word as written (quotes kept), its line, and the command substitutions inside it."""

    text: str
    line: int
    subs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Op:
    """A control operator (`;`, `&&`, `|`, `(`...) or a newline."""

    text: str
    line: int


@dataclass(frozen=True)
class Command:
    """A simple command (its words, redirections included), and the function it is defined in."""

    words: tuple[Word, ...]
    line: int
    function: str | None


@dataclass(frozen=True)
class AwsCall:
    """One `aws <service> <operation> ...` command of a script."""

    script: str
    line: int
    function: str | None
    service: str
    operation: str
    args: tuple[Word, ...]
    global_args: tuple[Word, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(["aws", *(w.text for w in self.global_args), self.service, self.operation,
                         *(w.text for w in self.args)])

    def __str__(self) -> str:
        where = f" (in {self.function})" if self.function else ""
        return f"{self.script}:{self.line}{where}: {self.text}"


class _Lexer:
    def __init__(self, text: str, line: int) -> None:
        self.text, self.i, self.line = text, 0, line

    def error(self, what: str) -> ValueError:
        return ValueError(f"line {self.line}: {what}")

    def tokens(self) -> list[Word | Op]:
        text, n = self.text, len(self.text)
        out: list[Word | Op] = []
        heredocs: list[tuple[str, bool]] = []
        heredoc_next = False
        while self.i < n:
            c = text[self.i]
            if c == "\\" and text.startswith("\n", self.i + 1):
                self.i += 2
                self.line += 1
            elif c in " \t\r":
                self.i += 1
            elif c == "\n":
                out.append(Op("\n", self.line))
                self.i += 1
                self.line += 1
                for delimiter, strip_tabs in heredocs:
                    self.skip_heredoc(delimiter, strip_tabs)
                heredocs = []
            elif c == "#":
                while self.i < n and text[self.i] != "\n":
                    self.i += 1
            elif op := next((o for o in OPERATORS if text.startswith(o, self.i)), None):
                out.append(Op(op, self.line))
                self.i += len(op)
            else:
                word = self.word()
                out.append(word)
                if heredoc_next:
                    heredocs.append((_unquote_delimiter(word.text), False))
                    heredoc_next = False
                elif word.text.startswith("<<") and not word.text.startswith("<<<"):
                    body = word.text[2:]
                    strip_tabs = body.startswith("-")
                    body = body.removeprefix("-")
                    if body:
                        heredocs.append((_unquote_delimiter(body), strip_tabs))
                    else:
                        heredoc_next = True
        return out

    def skip_heredoc(self, delimiter: str, strip_tabs: bool) -> None:
        text = self.text
        while self.i < len(text):
            end = text.find("\n", self.i)
            end = len(text) if end < 0 else end
            line = text[self.i:end]
            self.i = end + 1
            self.line += 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                return
        raise self.error(f"here-document without its delimiter {delimiter!r}")

    def word(self) -> Word:
        text, n = self.text, len(self.text)
        start, line = self.i, self.line
        subs: list[tuple[str, int]] = []
        while self.i < n:
            c = text[self.i]
            if c in " \t\r\n;|()":
                break
            if c == "&":
                if self.i > start and text[self.i - 1] in "<>":
                    self.i += 1
                    continue
                break
            if c == "\\":
                if text.startswith("\n", self.i + 1):
                    self.line += 1
                self.i += 2
            elif c == "'":
                self.single_quoted()
            elif c == '"':
                self.i += 1
                self.double_quoted(subs)
            elif c == "$" and text.startswith("(", self.i + 1):
                self.i += 2
                self.parenthesized(subs)
            elif c == "$" and text.startswith("{", self.i + 1):
                self.i += 2
                self.braced(subs)
            elif c == "`":
                self.backquoted(subs)
            elif c in "<>" and text.startswith("(", self.i + 1):
                self.i += 2
                self.parenthesized(subs)  # process substitution
            else:
                self.i += 1
        return Word(text[start:self.i], line, tuple(subs))

    def single_quoted(self) -> None:
        end = self.text.find("'", self.i + 1)
        if end < 0:
            raise self.error("unterminated single quote")
        self.line += self.text.count("\n", self.i, end)
        self.i = end + 1

    def double_quoted(self, subs: list[tuple[str, int]]) -> None:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c == "\\":
                self.line += text.startswith("\n", self.i + 1)
                self.i += 2
            elif c == '"':
                self.i += 1
                return
            elif c == "$" and text.startswith("(", self.i + 1):
                self.i += 2
                self.parenthesized(subs)
            elif c == "$" and text.startswith("{", self.i + 1):
                self.i += 2
                self.braced(subs)
            elif c == "`":
                self.backquoted(subs)
            else:
                self.line += c == "\n"
                self.i += 1
        raise self.error("unterminated double quote")

    def parenthesized(self, subs: list[tuple[str, int]]) -> None:
        """From just after `$(`: up to the matching `)`; the content is recorded as a substitution."""
        text, start, line, depth = self.text, self.i, self.line, 1
        while self.i < len(text):
            c = text[self.i]
            if c == "\\":
                self.line += text.startswith("\n", self.i + 1)
                self.i += 2
            elif c == "'":
                self.single_quoted()
            elif c == '"':
                self.i += 1
                self.double_quoted([])  # nested substitutions are found when the content is lexed
            elif c == "#" and (self.i == start or text[self.i - 1] in " \t\n"):
                while self.i < len(text) and text[self.i] != "\n":
                    self.i += 1
            else:
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        subs.append((text[start:self.i], line))
                        self.i += 1
                        return
                self.line += c == "\n"
                self.i += 1
        raise self.error("unterminated $(")

    def braced(self, subs: list[tuple[str, int]]) -> None:
        """From just after `${`: up to the matching `}`."""
        text, depth = self.text, 1
        while self.i < len(text):
            c = text[self.i]
            if c == "\\":
                self.i += 2
            elif c == "'":
                self.single_quoted()
            elif c == '"':
                self.i += 1
                self.double_quoted(subs)
            elif c == "$" and text.startswith("(", self.i + 1):
                self.i += 2
                self.parenthesized(subs)
            else:
                depth += (c == "{") - (c == "}")
                self.line += c == "\n"
                self.i += 1
                if depth == 0:
                    return
        raise self.error("unterminated ${")

    def backquoted(self, subs: list[tuple[str, int]]) -> None:
        text, start, line = self.text, self.i + 1, self.line
        self.i += 1
        while self.i < len(text) and text[self.i] != "`":
            self.line += text[self.i] == "\n"
            self.i += 2 if text[self.i] == "\\" else 1
        if self.i >= len(text):
            raise self.error("unterminated backquote")
        subs.append((text[start:self.i], line))
        self.i += 1


def _unquote_delimiter(text: str) -> str:
    return text.replace("'", "").replace('"', "").replace("\\", "")


def tokens(text: str, first_line: int = 1) -> list[Word | Op]:
    return _Lexer(text, first_line).tokens()


def commands(script: str) -> list[Command]:
    """Every simple command of the script, those inside command substitutions included, each with the function
    it belongs to (`name() { ...; }`), in order of appearance."""
    out: list[Command] = []
    _commands(script, 1, None, out)
    return out


def _commands(text: str, first_line: int, function: str | None, out: list[Command]) -> None:
    toks = tokens(text, first_line)
    stack: list[str | None] = []
    pending: str | None = None
    current: list[Word] = []

    def owner() -> str | None:
        return next((f for f in reversed(stack) if f), function)

    def flush() -> None:
        if current:
            out.append(Command(tuple(current), current[0].line, owner()))
            current.clear()

    skip = 0
    for k, tok in enumerate(toks):
        if skip:
            skip -= 1
            continue
        if isinstance(tok, Op):
            flush()
            continue
        if not current and tok.text == "{":
            stack.append(pending)
            pending = None
            continue
        if not current and tok.text == "}" and stack:
            flush()
            stack.pop()
            continue
        if not current and tok.text == "function" and k + 1 < len(toks) and isinstance(toks[k + 1], Word):
            pending = toks[k + 1].text  # `function name {` / `function name() {`
            skip = 1
            continue
        after = toks[k + 1:k + 3]
        if not current and [t.text for t in after] == ["(", ")"] and all(isinstance(t, Op) for t in after):
            pending = tok.text  # `name() {`: a definition, not a call
            skip = 2
            continue
        current.append(tok)
        for sub, line in tok.subs:
            _commands(sub, line, owner(), out)
    flush()


@cache
def global_options() -> dict[str, int]:
    """The AWS CLI's global options (awscli/data/cli.json) -> number of values they take."""
    data = json.loads(resources.files("awscli").joinpath("data/cli.json").read_text())
    return {name: 0 if spec.get("action") in ("store_true", "store_false", "version") else 1
            for name, spec in data["options"].items()}


def _is_redirection(word: Word) -> bool:
    return bool(REDIRECTION.match(word.text))


def _strip_redirections(words: Sequence[Word]) -> tuple[Word, ...]:
    out: list[Word] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif _is_redirection(word):
            skip = REDIRECTION.sub("", word.text) == ""  # `> file`: the target is the next word
        else:
            out.append(word)
    return tuple(out)


def extract_calls(script: str, name: str = "") -> list[AwsCall]:
    """Every `aws [global options] <service> <operation> ...` command of a script, in order of lines."""
    calls: list[AwsCall] = []
    options = global_options()
    for command in commands(script):
        words = command.words
        for i, word in enumerate(words):
            if word.text != "aws":
                continue
            j = i + 1
            while j < len(words) and words[j].text.startswith("--") and words[j].text[2:] in options:
                j += 1 + options[words[j].text[2:]]
            if j + 1 < len(words) and NAME.fullmatch(words[j].text) and NAME.fullmatch(words[j + 1].text):
                calls.append(AwsCall(name, word.line, command.function, words[j].text, words[j + 1].text,
                                     _strip_redirections(words[j + 2:]), words[i + 1:j]))
    return sorted(calls, key=lambda c: c.line)


GREP = re.compile(r"(?<![\w./-])aws\s+[a-z0-9][a-z0-9-]*\s+[a-z0-9][a-z0-9-]*")


def grep_count(script: str) -> int:
    """The naive count: `aws <word> <word>` occurrences on non-comment lines, continuation lines joined."""
    joined = script.replace("\\\n", " ")
    return sum(len(GREP.findall(line)) for line in joined.splitlines() if not line.lstrip().startswith("#"))


# ---------------------------------------------------------------------------------------------------------
# 2. Values
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """A parameter expansion: `$NAME`, `${NAME}`, `$1`, `${NAME:-default}`."""

    name: str
    default: str | None = None


Part = str | Var
VAR = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])|\{([^}]*)\})")
BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?::?-(.*))?", re.DOTALL)


def parts(text: str) -> tuple[Part, ...]:
    """A word as literal strings and parameter expansions, quotes removed. Command substitutions and other
    expansions (`${x%%/*}`...) raise ValueError: such a word is not a value the test can follow."""
    out: list[Part] = []
    i = 0

    def literal(s: str) -> None:
        if s:
            if out and isinstance(out[-1], str):
                out[-1] += s
            else:
                out.append(s)

    def expansions(s: str) -> None:
        pos = 0
        for m in VAR.finditer(s):
            literal(s[pos:m.start()])
            if m.group(1) is not None:
                out.append(Var(m.group(1)))
            else:
                braced = BRACED.fullmatch(m.group(2))
                if braced is None:
                    raise ValueError(f"unsupported parameter expansion ${{{m.group(2)}}} in {text!r}")
                out.append(Var(braced.group(1), braced.group(2)))
            pos = m.end()
        literal(s[pos:])

    if "$(" in text or "`" in text:
        raise ValueError(f"a command substitution is not a value: {text!r}")
    while i < len(text):
        c = text[i]
        if c == "'":
            end = text.index("'", i + 1)
            literal(text[i + 1:end])
            i = end + 1
        elif c == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            expansions(re.sub(r'\\([$`"\\])', r"\1", text[i + 1:end]))
            i = end + 1
        elif c == "\\":
            literal(text[i + 1:i + 2])
            i += 2
        else:
            m = re.compile(r"[^'\"\\]+").match(text, i)
            assert m is not None
            expansions(m.group())
            i = m.end()
    return tuple(out)


def literal(word: Word) -> str | None:
    """The word's value when it has no expansion."""
    try:
        found = parts(word.text)
    except ValueError:
        return None
    if all(isinstance(p, str) for p in found):
        return "".join(p for p in found if isinstance(p, str))
    return None


class Unreachable(Exception):
    """A value depends on the parameters of a function that nothing calls."""


Runtime = Mapping[str, Sequence[str] | Callable[["ShellValues"], Sequence[str]]]
RESERVED = frozenset({"if", "elif", "then", "else", "while", "until", "do", "!", "time"})
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?)=(.*)$", re.DOTALL)


class ShellValues:
    """Expands words of one script. `runtime`: variables whose values are only known on the instance (command
    output, loop and `read` variables) -> the values the test stands for them."""

    def __init__(self, script: str, name: str, runtime: Runtime) -> None:
        self.name = name
        self.runtime = runtime
        self.commands = commands(script)
        self.assigned: dict[str, list[str | None]] = {}
        for command in self.commands:
            self._record_assignments(command.words)

    def _record_assignments(self, words: Sequence[Word]) -> None:
        texts = [w.text for w in words]
        while texts and texts[0] in RESERVED:
            texts, words = texts[1:], words[1:]
        if texts[:1] == ["for"] and len(texts) > 1:
            self.assigned.setdefault(texts[1], []).append(None)  # a loop variable: many values
            return
        if texts[:1] == ["read"]:
            for t in texts[1:]:
                if not t.startswith("-"):
                    self.assigned.setdefault(t, []).append(None)
            return
        start = 1 if texts[:1] and texts[0] in ("local", "export", "readonly", "declare") else 0
        for word in words[start:]:
            m = ASSIGNMENT.match(word.text)
            if m is None:
                if start:
                    continue  # `local a b=1`: `a` declared without a value
                break
            static = m.group(2) == "" and "$(" not in m.group(3) and "`" not in m.group(3) and m.group(3) != ""
            self.assigned.setdefault(m.group(1), []).append(m.group(3) if static else None)

    def static(self, name: str) -> str | None:
        """The raw value of a variable assigned exactly once, to a value without command substitution."""
        values = self.assigned.get(name, [])
        return values[0] if len(values) == 1 else None

    def call_sites(self, function: str) -> list[tuple[Command, tuple[Word, ...]]]:
        """Every command that runs `function` (directly, or as an argument of a wrapper such as `retry`), with
        the arguments it passes."""
        found = []
        for command in self.commands:
            for i, word in enumerate(command.words):
                if word.text == function:
                    found.append((command, _strip_redirections(command.words[i + 1:])))
                    break
        return found

    def reachable(self, function: str | None) -> bool:
        return function is None or bool(self.call_sites(function))

    def expand(self, word: Word | str, function: str | None, strict: bool = True) -> list[str]:
        """Every string the word can stand for. Strict: an unknown variable raises KeyError; otherwise it becomes
        `<$NAME>`."""
        text = word.text if isinstance(word, Word) else word
        try:
            found = parts(text)
        except ValueError:
            if strict:
                raise
            return [f"<{text}>"]
        options = [[p] if isinstance(p, str) else self._values(p, function, strict, text) for p in found]
        return sorted({"".join(combo) for combo in product(*options)})

    def _values(self, var: Var, function: str | None, strict: bool, text: str) -> list[str]:
        name = var.name
        if name.isdigit():
            return [v for arg, caller in self._arguments(function, int(name), text)
                    for v in self.expand(arg, caller, strict)]
        if name in self.runtime:
            value = self.runtime[name]
            return list(value(self) if callable(value) else value)
        raw = self.static(name)
        if raw is not None:
            return self.expand(raw, None, strict)
        if var.default is not None and name not in self.assigned:
            return self.expand(var.default, function, strict) if var.default else [""]
        if strict:
            raise KeyError(f"{self.name}: ${name} (in {text}) is not assigned once in the script and not in the "
                           f"test's table of runtime values")
        return [f"<${name}>"]

    def _arguments(self, function: str | None, index: int, text: str) -> list[tuple[Word, str | None]]:
        """The word passed as parameter `index` at each call of `function`, with the caller's function."""
        if function is None:
            raise KeyError(f"{self.name}: ${index} in {text} outside of a function")
        sites = self.call_sites(function)
        if not sites:
            raise Unreachable(f"{self.name}: {function} is never called")
        out = []
        for command, args in sites:
            if index > len(args):
                raise KeyError(f"{self.name}:{command.line}: {function} called without argument {index}")
            out.append((args[index - 1], command.function))
        return out

    def origins(self, word: Word, function: str | None) -> list[str]:
        """The variable(s) a resource identifier stands for (`"$VOLUME_ID"`), following positional parameters to
        the arguments of the function's callers. Anything but one variable raises ValueError."""
        found = parts(word.text)
        if len(found) != 1 or not isinstance(found[0], Var):
            raise ValueError(f"{self.name}: a resource identifier must be one variable, not {word.text}")
        name = found[0].name
        if not name.isdigit():
            return [name]
        return sorted({origin for arg, caller in self._arguments(function, int(name), word.text)
                       for origin in self.origins(arg, caller)})


# ---------------------------------------------------------------------------------------------------------
# 3. Permissions
# ---------------------------------------------------------------------------------------------------------

#: CLI service name -> botocore service name.
SERVICES = {"s3api": "s3"}


@cache
def _session() -> Any:
    return botocore.session.get_session()


@cache
def service_model(service: str) -> Any:
    return _session().get_service_model(SERVICES.get(service, service))


@cache
def cli_operations(service: str) -> dict[str, str]:
    """CLI operation name (kebab-case, as the CLI derives it) -> API operation name, from the service model."""
    return {xform_name(op, "-"): op for op in service_model(service).operation_names}


@cache
def _s3_command_args(command: str) -> dict[str, Mapping[str, Any]]:
    from awscli.customizations.s3 import subcommands

    classes: dict[str | None, Any] = {getattr(c, "NAME", None): c for c in vars(subcommands).values()
               if isinstance(c, type) and hasattr(c, "ARG_TABLE")}
    if not command or command not in classes:
        raise ValueError(f"unknown `aws s3` command {command!r}")
    return {arg["name"]: arg for arg in classes[command].ARG_TABLE}


@dataclass(frozen=True)
class ParsedCall:
    """A call checked against the CLI's definition: its API operation (or `aws s3` command), options with their
    raw values (a flag has none) and positional arguments."""

    call: AwsCall
    operation: str
    options: Mapping[str, tuple[Word, ...]]
    positionals: tuple[Word, ...]

    def option(self, name: str) -> Word | None:
        values = self.options.get(name)
        return values[0] if values else None


def parse_call(call: AwsCall) -> ParsedCall:
    """The call's options, validated: unknown services, operations and options, and missing required options,
    raise ValueError."""
    if call.service == "s3":
        return _parse_s3_command(call)
    operations = cli_operations(call.service)
    if call.operation not in operations:
        raise ValueError(f"{call}: `{call.service} {call.operation}` is not an operation of the service model")
    operation = operations[call.operation]
    model = service_model(call.service).operation_model(operation)
    members = {xform_name(m, "-"): shape for m, shape in (model.input_shape.members.items()
                                                         if model.input_shape else ())}
    arity: dict[str, int | str] = dict(global_options())
    for cli_name, shape in members.items():
        arity[cli_name] = 0 if shape.type_name == "boolean" else "+" if shape.type_name == "list" else 1
        if shape.type_name == "boolean":
            arity[f"no-{cli_name}"] = 0
    if _can_paginate(call.service, operation):
        arity.update({"starting-token": 1, "page-size": 1, "max-items": 1})
    arity.update({"cli-input-json": 1, "generate-cli-skeleton": "?"})
    options, positionals = _parse_words(call, [*call.global_args, *call.args], arity)
    if positionals:
        raise ValueError(f"{call}: unexpected positional arguments {[w.text for w in positionals]}")
    if "cli-input-json" not in options:
        missing = [xform_name(m, "-") for m in (model.input_shape.required_members if model.input_shape else [])
                   if xform_name(m, "-") not in options]
        if missing:
            raise ValueError(f"{call}: required options missing: {missing}")
    return ParsedCall(call, operation, {f"--{k}": v for k, v in options.items()}, positionals)


def _can_paginate(service: str, operation: str) -> bool:
    try:
        _session().get_paginator_model(SERVICES.get(service, service)).get_paginator(operation)
    except Exception:
        return False
    return True


def _parse_s3_command(call: AwsCall) -> ParsedCall:
    table = _s3_command_args(call.operation)
    arity: dict[str, int | str | tuple[str, ...]] = dict(global_options())
    for name, arg in table.items():
        if arg.get("positional_arg"):
            continue
        nargs, choices = arg.get("nargs"), arg.get("choices")
        if nargs == "?":
            arity[name] = tuple(choices) if choices else "?"
        elif nargs in ("+", "*"):
            arity[name] = "+"
        elif isinstance(nargs, int):
            arity[name] = nargs
        else:
            arity[name] = 0 if arg.get("action") in ("store_true", "store_false") else 1
    options, positionals = _parse_words(call, [*call.global_args, *call.args], arity)
    paths = table["paths"].get("nargs")
    expected = {2: (2,), 1: (1,), "?": (0, 1)}[paths]
    if len(positionals) not in expected:
        raise ValueError(f"{call}: `aws s3 {call.operation}` takes {paths} paths, got {len(positionals)}")
    return ParsedCall(call, call.operation, {f"--{k}": v for k, v in options.items()}, positionals)


def _parse_words(call: AwsCall, words: Sequence[Word],
                 arity: Mapping[str, int | str | tuple[str, ...]]) -> tuple[dict[str, tuple[Word, ...]],
                                                                            tuple[Word, ...]]:
    options: dict[str, tuple[Word, ...]] = {}
    positionals: list[Word] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.text.startswith("--"):
            positionals.append(word)
            i += 1
            continue
        name = word.text[2:]
        if name not in arity:
            raise ValueError(f"{call}: unknown option --{name}")
        count = arity[name]
        i += 1
        if isinstance(count, int):
            values = tuple(words[i:i + count])
            if len(values) < count:
                raise ValueError(f"{call}: --{name} needs {count} value(s)")
        elif count == "+":
            end = i
            while end < len(words) and not words[end].text.startswith("--"):
                end += 1
            values = tuple(words[i:end])
            if not values:
                raise ValueError(f"{call}: --{name} needs values")
        else:
            nxt = words[i] if i < len(words) else None
            take = nxt is not None and not nxt.text.startswith("--") and (
                count == "?" or literal(nxt) in count)
            values = (nxt,) if take and nxt is not None else ()
        options[name] = values
        i += len(values)
    return options, tuple(positionals)


@dataclass(frozen=True)
class Resource:
    """An AWS resource a request touches: its ARN, its tags (resource tags of the request context), and the
    resources it leads to (e.g. the instance a volume is attached to), by relation name."""

    arn: str
    tags: Mapping[str, str] = field(default_factory=dict, compare=False)
    related: Mapping[str, tuple[Resource, ...]] = field(default_factory=dict, compare=False)


EVERYTHING = Resource("*")


@dataclass(frozen=True)
class Rule:
    """A resource type an action authorizes, and where the call names it: the first option present among
    `sources`, each an (option, relation) pair (relation None: the named resource itself)."""

    resource_type: str
    sources: tuple[tuple[str, str | None], ...]


SAR_EC2 = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html"
SAR_AUTOSCALING = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html"
SAR_S3 = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html"

#: IAM action -> the resource types it authorizes (each one's ARN must be allowed; none: only "*"), for the
#: actions the scripts use. Source: the actions tables of the Service Authorization Reference (SAR_EC2,
#: SAR_AUTOSCALING): resource types marked required (*), with their ARN formats
#: arn:aws:ec2:<region>:<account>:instance/<id>, .../volume/<id>, .../network-interface/<id>, and
#: arn:aws:autoscaling:<region>:<account>:autoScalingGroup:<uuid>:autoScalingGroupName/<name>.
RESOURCE_RULES: dict[str, tuple[Rule, ...]] = {
    # "List" access level, no resource type: Resource must be "*".
    "ec2:DescribeInstances": (),
    "ec2:DescribeVolumes": (),
    "ec2:DescribeNetworkInterfaces": (),
    # instance* and volume*: both the volume and the instance it is attached to / detached from.
    "ec2:AttachVolume": (Rule("volume", (("--volume-id", None),)), Rule("instance", (("--instance-id", None),))),
    "ec2:DetachVolume": (Rule("volume", (("--volume-id", None),)),
                         Rule("instance", (("--instance-id", None), ("--volume-id", "attached-instance")))),
    # instance* and network-interface*.
    "ec2:AttachNetworkInterface": (Rule("network-interface", (("--network-interface-id", None),)),
                                   Rule("instance", (("--instance-id", None),))),
    "ec2:DetachNetworkInterface": (Rule("network-interface", (("--attachment-id", "network-interface"),)),
                                   Rule("instance", (("--attachment-id", "instance"),))),
    # autoScalingGroup*: the group of the instance.
    "autoscaling:SetInstanceHealth": (Rule("autoScalingGroup", (("--instance-id", "auto-scaling-group"),)),),
}

#: S3 API operation -> IAM action, where the name differs (SAR_S3 and the API reference's Permissions sections:
#: HeadObject needs s3:GetObject, ListObjectsV2 needs s3:ListBucket).
S3_ACTIONS = {"HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "DeleteObject": "s3:DeleteObject", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
              "CopyObject": "s3:PutObject"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API operation needs: `<signing name>:<operation>`, but for the S3 exceptions."""
    model = service_model(service)
    if model.signing_name == "s3":
        if operation not in S3_ACTIONS:
            raise KeyError(f"no IAM action known for S3 {operation}: add it to S3_ACTIONS with its source")
        return S3_ACTIONS[operation]
    return f"{model.signing_name}:{operation}"


def resource_type(arn: str) -> str:
    """`instance` for arn:aws:ec2:...:instance/i-1, `autoScalingGroup` for an Auto Scaling group ARN."""
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else ""
    return re.split(r"[/:]", resource, maxsplit=1)[0]


def tag_context(service_prefix: str, tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Resource tags as condition keys: the global `aws:ResourceTag/<key>` and the service's own."""
    out: dict[str, tuple[str, ...]] = {}
    for key, value in tags.items():
        out[f"aws:ResourceTag/{key}"] = (value,)
        out[f"{service_prefix}:ResourceTag/{key}"] = (value,)
    return out


@dataclass(frozen=True)
class Access:
    """One IAM request a call makes: the API operation that needs it, the action, one resource, the context."""

    call: AwsCall
    api: str
    action: str
    resource: Resource
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource.arn} ({self.api}) for {self.call}"


Entities = Callable[[str, AwsCall], Sequence[Resource]]
Objects = Callable[[str, str], Sequence[str]]


def _no_objects(bucket: str, prefix: str) -> Sequence[str]:
    raise KeyError(f"no object listing given for s3://{bucket}/{prefix}")


def accesses(parsed: ParsedCall, values: ShellValues, entities: Entities,
             objects: Objects = _no_objects) -> list[Access]:
    """The IAM requests of a call. `entities(variable, call)` gives the resources a shell variable naming a
    resource can stand for (KeyError for a variable nobody mapped); `objects(bucket, prefix)` the keys a
    recursive `aws s3` command finds under a prefix."""
    call = parsed.call
    if call.service == "s3":
        return _s3_command_accesses(parsed, values, objects)
    action = iam_action(call.service, parsed.operation)
    if action.startswith("s3:"):
        return _s3_api_accesses(parsed, action, values)
    if action not in RESOURCE_RULES:
        raise KeyError(f"{call}: no resource rule for {action}: look its resource types up in the Service "
                       f"Authorization Reference and add them to RESOURCE_RULES")
    if any(o in parsed.options for o in ("--tag-specifications", "--tags")):
        raise NotImplementedError(f"{call}: request tags (aws:RequestTag, aws:TagKeys) are not modelled")
    rules = RESOURCE_RULES[action]
    if not rules:
        return [Access(call, parsed.operation, action, EVERYTHING)]
    out: list[Access] = []
    prefix = action.split(":")[0]
    for rule in rules:
        option, relation = next(((o, r) for o, r in rule.sources if parsed.option(o) is not None), (None, None))
        if option is None:
            raise ValueError(f"{call}: none of {[o for o, _ in rule.sources]} names the {rule.resource_type}")
        word = parsed.option(option)
        assert word is not None
        for variable in values.origins(word, call.function):
            for entity in entities(variable, call):
                targets = (entity,) if relation is None else entity.related.get(relation)
                if not targets:
                    raise KeyError(f"{call}: ${variable} ({entity.arn}) has no {relation!r} resource")
                for target in targets:
                    if resource_type(target.arn) != rule.resource_type:
                        raise ValueError(f"{call}: {option} should name a {rule.resource_type}, "
                                         f"${variable} maps to {target.arn}")
                    out.append(Access(call, parsed.operation, action, target, tag_context(prefix, target.tags)))
    return out


def s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


def _object_accesses(call: AwsCall, apis: Sequence[str], uris: Sequence[str],
                     context: Mapping[str, tuple[str, ...]] | None = None) -> list[Access]:
    out = []
    for uri in uris:
        bucket, key = _split_uri(uri)
        if not key:
            raise ValueError(f"{call}: {uri} names no object")
        out += [Access(call, api, S3_ACTIONS[api], Resource(s3_arn(bucket, key)), dict(context or {}))
                for api in apis]
    return out


def _s3_command_accesses(parsed: ParsedCall, values: ShellValues, objects: Objects) -> list[Access]:
    """`aws s3 cp|mv|rm|ls`: the S3 API operations the CLI sends (awscli.customizations.s3), and their actions.
    cp from S3: HeadObject then GetObject (both s3:GetObject); cp to S3: PutObject (multipart uploads of big
    files need s3:PutObject too), with `--sse` the request carries s3:x-amz-server-side-encryption; S3 to S3:
    CopyObject (s3:GetObject on the source, s3:PutObject on the destination); mv: cp, then DeleteObject of an
    S3 source; rm: DeleteObject; ls: ListObjectsV2 (s3:ListBucket on the bucket, with s3:prefix and, unless
    --recursive, s3:delimiter "/"). With --recursive, cp/rm from S3 first list the prefix (ListObjectsV2,
    no delimiter), then act on every object found (GetObject / DeleteObject, no HeadObject); sync from S3 to
    a local directory does the same as a recursive cp. Uploads of directories are refused (their keys depend
    on local files)."""
    call, command = parsed.call, parsed.operation
    recursive = "--recursive" in parsed.options or command == "sync"
    function = call.function
    paths = [(w, values.expand(w, function, strict=False)) for w in parsed.positionals]
    remote = [all(v.startswith("s3://") for v in lenient) for _, lenient in paths]
    uris = [values.expand(w, function) if is_s3 else [] for (w, _), is_s3 in zip(paths, remote, strict=True)]

    def listing(sources: Sequence[str], apis: Sequence[str]) -> list[Access]:
        out = []
        for uri in sources:
            bucket, prefix = _split_uri(uri)
            out.append(Access(call, "ListObjectsV2", "s3:ListBucket", Resource(s3_arn(bucket)),
                              {"s3:prefix": (prefix,)}))
            keys = list(objects(bucket, prefix))
            if not keys or any(not k.startswith(prefix) for k in keys):
                raise KeyError(f"{call}: no objects known under s3://{bucket}/{prefix}: {keys}")
            out += _object_accesses(call, apis, [f"s3://{bucket}/{k}" for k in keys])
        return out

    if command in ("cp", "mv", "sync"):
        source, destination = uris
        if not source and not destination:
            raise ValueError(f"{call}: neither path is in S3 (or its variables are unknown)")
        if recursive and (destination or not source or "--delete" in parsed.options):
            raise NotImplementedError(f"{call}: recursive uploads, copies and deletions are not modelled")
        out: list[Access] = []
        if recursive:
            out += listing(source, ["GetObject"])
        elif source and destination:
            out += _object_accesses(call, ["HeadObject", "GetObject"], source)
            out += _object_accesses(call, ["CopyObject"], destination)
        elif source:
            out += _object_accesses(call, ["HeadObject", "GetObject"], source)
        else:
            sse = parsed.options.get("--sse")
            context: dict[str, tuple[str, ...]] = {}
            if sse is not None:
                algorithm = literal(sse[0]) if sse else "AES256"  # `--sse` alone means AES256
                if algorithm is None:
                    raise ValueError(f"{call}: --sse {sse[0].text} is not a literal")
                context["s3:x-amz-server-side-encryption"] = (algorithm,)
            out += _object_accesses(call, ["PutObject"], destination, context)
        if command == "mv" and source:
            if recursive:
                raise NotImplementedError(f"{call}: recursive moves are not modelled")
            out += _object_accesses(call, ["DeleteObject"], source)
        return out
    if command == "rm":
        if not uris[0]:
            raise ValueError(f"{call}: the path is not in S3 (or its variables are unknown)")
        return listing(uris[0], ["DeleteObject"]) if recursive else _object_accesses(call, ["DeleteObject"], uris[0])
    if command == "ls":
        if not uris:
            return [Access(call, "ListBuckets", "s3:ListAllMyBuckets", EVERYTHING)]
        if not uris[0]:
            raise ValueError(f"{call}: the path is not in S3 (or its variables are unknown)")
        out = []
        for uri in uris[0]:
            bucket, prefix = _split_uri(uri)
            context = {"s3:prefix": (prefix,)}
            if not recursive:
                context["s3:delimiter"] = ("/",)
            out.append(Access(call, "ListObjectsV2", "s3:ListBucket", Resource(s3_arn(bucket)), context))
        return out
    raise NotImplementedError(f"{call}: `aws s3 {command}` is not modelled")


def _s3_api_accesses(parsed: ParsedCall, action: str, values: ShellValues) -> list[Access]:
    call, operation = parsed.call, parsed.operation
    bucket_word = parsed.option("--bucket")
    if bucket_word is None:
        raise ValueError(f"{call}: no --bucket")
    buckets = values.expand(bucket_word, call.function)
    if operation in ("ListObjectsV2", "ListObjects"):
        prefix = parsed.option("--prefix")
        listed = {"s3:prefix": tuple(values.expand(prefix, call.function))} if prefix else {}
        return [Access(call, operation, action, Resource(s3_arn(b)), listed) for b in buckets]
    key_word = parsed.option("--key")
    if key_word is None:
        raise ValueError(f"{call}: no --key")
    context: dict[str, tuple[str, ...]] = {}
    sse = parsed.option("--server-side-encryption")
    if sse is not None:
        context["s3:x-amz-server-side-encryption"] = tuple(values.expand(sse, call.function))
    return [Access(call, operation, action, Resource(s3_arn(b, k)), context)
            for b in buckets for k in values.expand(key_word, call.function)]
