"""No spec value can run code on a node (issue #10, item 4).

Two lines of defence, each tested on its own:
- validation: every spec string that reaches a boot script has a strict grammar (`spec.grammar`, `spec.validate`);
  the classic payloads are rejected with the field's path, and hypothesis shows that whatever it does accept is
  rendered harmlessly;
- quoting: every `{{ ... }}` of the shell templates ends in the `sh` (or, inside a `#` comment, `comment`) filter,
  and with validation BYPASSED (values set on the parsed model) hypothesis renders adversarial values for every
  templated field and proves the scripts still hold each value as one literal word.

"Proves" means: `bash -n` accepts every rendered script, and the value-bearing statements of every script (the
template lines holding a `{{ ... }}`, completed to whole statements, inside the template's own loops) run under
bash with stand-in commands: PATH is empty and `command_not_found_handle` logs each command instead of running it.
A value that ran would leave a canary file (payloads write it with shell redirections, which need no command),
call a command the benign render does not call, or change the arguments of the calls it does make.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeaws.bootstrap import userdata
from kubeaws.errors import SpecError
from kubeaws.spec import grammar
from kubeaws.spec.load import load_spec_text
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.validate import DNS_LABEL, MAX_CLUSTER_NAME, MAX_NODE_GROUP_NAME, format_path
from tests.helpers import BASE, merge

BUCKET = "kubeaws-zqvbucket-0123456789"  # no other token in it: the test maps each token to its value
BASH = shutil.which("bash") or "/bin/bash"
TEMPLATES = Path(userdata.__file__).parent / "templates"
SCRIPTS = sorted(p.name for p in TEMPLATES.glob("*.sh.j2"))
SETTINGS = settings(max_examples=25, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
#: Pieces of shell syntax a value could use to escape its word; `>canary` writes the canary with no command.
SHELL_PIECES = ["$(", ")", "`", ";", "\n", "'", '"', "\\", "|", "&", "&&", ">canary", "$x", "${IFS}", " ", "#",
                "*", "?", "~", "!", "{", "}", "<", "\r", "\t", "$((1))", "echo x>canary", "touch canary", "%s",
                "{{ 7*7 }}", "\x00"]
HOSTILE = st.lists(st.sampled_from(SHELL_PIECES) | st.text(max_size=3), min_size=1, max_size=8).map("".join)
PAYLOADS = ['https://x"$(touch pwned)"', "https://x/`id`", "https://x/a;touch pwned", "https://x/\ntouch pwned",
            "https://x/$(id)", "https://x/'a'", "reg.example/a b", "reg.example/$(id)", "reg.example/a\n",
            "reg.example/a#e", "reg.example/a&b", "reg.example/a\\1"]


# -- the filter lint --------------------------------------------------------------------------------------
def _expressions(name: str) -> list[str]:
    return re.findall(r"\{\{(.*?)\}\}", (TEMPLATES / name).read_text())


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_value_in_a_script_goes_through_a_filter(name: str) -> None:
    for expr in _expressions(name):
        expr = expr.strip()
        if expr == "step":  # shell lines built by userdata._apply_steps from kubeaws' own names
            continue
        assert re.search(r'(\| *(sh|comment)|map\("sh"\) *\| *join\(" "\))$', expr), (name, expr)


def test_the_filters_make_one_word_and_one_line() -> None:
    for value in PAYLOADS:
        out = subprocess.run(["bash", "-c", f"printf '%s' {userdata.sh(value)}"], capture_output=True, text=True)
        assert out.stdout == value
        assert "\n" not in userdata.comment(value) and "\r" not in userdata.comment(value)


# -- validation rejects the payloads ----------------------------------------------------------------------
def _doc(**spec: Any) -> dict[str, Any]:
    return merge(BASE, {"spec": spec})


def _load(doc: dict[str, Any]) -> ClusterSpec:
    return load_spec_text(yaml.safe_dump(doc), "cluster.yaml")


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["packages", "imageRepository"])
def test_validation_rejects_shell_payloads_in_mirrors(field: str, payload: str) -> None:
    with pytest.raises(SpecError) as info:
        _load(_doc(mirrors={field: payload}))
    assert f"spec.mirrors.{field}" in [p.path for p in info.value.problems]


@pytest.mark.parametrize("where", ["name", "group", "label", "team", "region", "version"])
def test_validation_rejects_a_trailing_newline(where: str) -> None:
    """Patterns are matched whole: `^...$` alone accepted `dev\\n` as a cluster name."""
    doc = _doc()
    group = doc["spec"].setdefault("nodeGroups", [{"name": "general"}])[0]
    if where == "name":
        doc["metadata"]["name"] = "dev\n"
    elif where == "group":
        group["name"] = "general\n"
    elif where == "label":
        group["labels"] = {"role": "web\n"}
    elif where == "team":
        group["team"] = "pay\n"
    elif where == "region":
        doc["spec"]["region"] = doc["spec"]["region"] + "\n"
    else:
        doc["spec"]["kubernetesVersion"] = "1.31\n"
    with pytest.raises(SpecError):
        _load(doc)


# -- the harness: value-bearing statements under stand-in commands ----------------------------------------
_CONTROL = re.compile(r"^\s*\{%-?\s*(for|endfor|if|elif|else|endif)\b.*%\}\s*$")
_INCLUDE = re.compile(r'^\s*\{%-?\s*include\s+"([^"]+)"\s*-?%\}\s*$')
_CONTINUED = re.compile(r"(\\|\||&&)\s*$")


@cache
def _statements(name: str) -> str:
    """The template cut down to its value-bearing statements (plus the Jinja control lines around them; an
    include is cut down the same way). A statement continued on the next lines (`\\`, `|`, `&&`, a
    `while ...; do` loop) is kept whole."""
    lines = (TEMPLATES / name).read_text().splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        include = _INCLUDE.match(line)
        if include:
            out.append(_statements(include[1]))
        elif _CONTROL.match(line):
            out.append(line)
        elif "{{" in line and not line.lstrip().startswith("#"):
            depth = 0
            while True:
                depth += line.rstrip().endswith(("; do", "; then")) - (line.strip() in ("done", "fi"))
                out.append(line)
                if depth <= 0 and not _CONTINUED.search(line):
                    break
                i += 1
                line = lines[i]
        elif "{{" in line:
            out.append(line)  # a comment: kept, so that a value breaking out of it would run
        i += 1
    return "\n".join(out) + "\n"


@contextmanager
def _recording() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every (template name, context) that render_scripts renders."""
    env = userdata._env()
    calls: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def get_template(self, name: str) -> Any:
            template = env.get_template(name)

            class Recorded:
                def render(self, *args: Any, **kwargs: Any) -> str:
                    ctx = dict(*args, **kwargs)
                    calls.append((name, ctx))
                    return template.render(ctx)

            return Recorded()

    with mock.patch.object(userdata, "_env", lambda: Recorder()):
        yield calls


def _render(spec: ClusterSpec, bucket: str, group: str) -> tuple[dict[str, str], list[tuple[str, dict[str, Any]]]]:
    with _recording() as calls:
        scripts = userdata.render_scripts(spec, "control-plane", bucket)
        scripts.update(userdata.render_scripts(spec, "node", bucket, group))
    return scripts, calls


_DUMP = re.compile(r"^\s*(?:local\s+(?:\w+\s+)*)?([A-Za-z_]\w*)=", re.MULTILINE)


def _run(snippet: str, tmp: Path) -> tuple[list[list[str]], dict[str, list[str]], bool]:
    """Run the statements inside a function with no command on PATH: (calls, variables, canary made)."""
    work = tmp / "run"
    work.mkdir(exist_ok=True)
    (work / "calls").write_bytes(b"")
    names = sorted(set(_DUMP.findall(snippet)))
    dump = "".join(f'printf "%s\\0" {n} "${{#{n}[@]}}" "${{{n}[@]}}" >>vars\n' for n in names)
    script = ("command_not_found_handle() { printf '%s\\0' \"$#\" \"$@\" >>calls; return 0; }\n"
              f"__statements() {{\n:\n{snippet}\n{dump}}}\n__statements\n")
    (work / "vars").write_bytes(b"")
    subprocess.run([BASH, "--noprofile", "--norc", "-c", script], cwd=work, env={"PATH": str(tmp / "empty")},
                   capture_output=True, timeout=20)
    calls, raw = [], (work / "calls").read_bytes().split(b"\0")[:-1]
    while raw:
        n = int(raw.pop(0))
        calls.append([a.decode(errors="replace") for a in raw[:n]])
        raw = raw[n:]
    variables: dict[str, list[str]] = {}
    fields = (work / "vars").read_bytes().split(b"\0")[:-1]
    while fields:
        name, count = fields[0].decode(), int(fields[1])
        variables[name] = [v.decode(errors="replace") for v in fields[2:2 + count]]
        fields = fields[2 + count:]
    canary = any(p.name in ("canary", "pwned") for p in work.iterdir())
    for p in work.iterdir():
        p.unlink()
    return calls, variables, canary


def _check_scripts(scripts: dict[str, str], tmp: Path) -> None:
    for name, text in scripts.items():
        path = tmp / name
        path.write_text(text)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr)


def _run_all(calls: list[tuple[str, dict[str, Any]]], tmp: Path) -> list[tuple[str, Any]]:
    env = userdata._env()
    (tmp / "empty").mkdir(exist_ok=True)
    out = []
    for name, ctx in calls:
        snippet = env.from_string(_statements(name)).render(ctx)
        out.append((name, _run(snippet, tmp)))
    return out


_BENIGN: dict[str, list[tuple[str, Any]]] = {}


def _safe(spec: ClusterSpec, bucket: str, benign: tuple[ClusterSpec, str], tmp: Path,
          mapping: dict[str, str] | None = None) -> None:
    """The hostile render's statements behave as the benign render's: same commands, no canary, the settings
    equal to what kubeaws meant; with `mapping` (benign token -> hostile value), the very same arguments."""
    group = spec.spec.node_groups[0].name
    scripts, calls = _render(spec, bucket, group)
    _check_scripts(scripts, tmp)
    ran = _run_all(calls, tmp)
    benign_spec, benign_bucket = benign
    key = benign_spec.model_dump_json() + benign_bucket
    if key not in _BENIGN:  # the benign run is the same for every example
        _, benign_calls = _render(benign_spec, benign_bucket, benign_spec.spec.node_groups[0].name)
        _BENIGN[key] = _run_all(benign_calls, tmp)
    expected = _BENIGN[key]
    for (name, (got_calls, got_vars, canary)), (_, (want_calls, _, _)), (_, ctx) in zip(
            ran, expected, calls, strict=True):
        assert not canary, name
        # sorted: the commands of a pipeline run (and log) concurrently
        assert sorted(c[0] for c in got_calls) == sorted(c[0] for c in want_calls), name
        for var in ("ROLE", "CLUSTER", "BUCKET", "REGION", "PKG_BASE", "PAUSE_IMAGE", "IMAGE_MIRROR", "GROUP"):
            key = {"GROUP": "group", "PKG_BASE": "pkg_base", "PAUSE_IMAGE": "pause_image",
                   "IMAGE_MIRROR": "image_mirror"}.get(var, var.lower())
            if var in got_vars:
                assert got_vars[var] == [str(ctx[key])], (name, var)
        if mapping is not None:
            def hostile(arg: str) -> str:
                for token, value in mapping.items():
                    arg = arg.replace(token, value)
                return arg
            assert sorted(got_calls) == sorted([hostile(a) for a in c] for c in want_calls), name


TOKENS = {"cluster": "zqvcluster", "region": "zqvregion", "packages": "https://zqvpackages.example/m",
          "image_repository": "zqvimages.example/m", "group": "zqvgroup", "bucket": BUCKET}


def _tokens_spec() -> ClusterSpec:
    spec = _load(_doc(mirrors={"packages": TOKENS["packages"], "imageRepository": TOKENS["image_repository"]},
                      nodeGroups=[{"name": "general"}], addons={"rookCeph": {}}))
    return _set(spec, TOKENS)


def _set(spec: ClusterSpec, values: dict[str, str]) -> ClusterSpec:
    """A copy with the values set on the model, past validation (pydantic does not validate assignments)."""
    spec = spec.model_copy(deep=True)
    spec.metadata.name = values["cluster"]
    spec.spec.region = values["region"]
    spec.spec.mirrors.packages = values["packages"]
    spec.spec.mirrors.image_repository = values["image_repository"]
    spec.spec.node_groups[0].name = values["group"]
    return spec


@SETTINGS
@given(field=st.sampled_from(sorted(TOKENS)), payload=HOSTILE)
def test_quoting_alone_keeps_every_value_one_word(field: str, payload: str, tmp_path_factory: Any) -> None:
    """Validation bypassed: the templates' quoting alone holds (the payload ends in `Z`: kubeaws strips a
    trailing '/' from mirror URLs, which would blur the comparison)."""
    tmp = tmp_path_factory.mktemp("quoting")
    value = TOKENS[field] + payload + "Z"
    benign = _tokens_spec()
    hostile_values = {**TOKENS, field: value}
    spec = _set(benign, hostile_values)
    bucket = hostile_values["bucket"]
    _safe(spec, bucket, (benign, BUCKET), tmp, mapping={TOKENS[field]: value})


def _matching(pattern: re.Pattern[str], limit: int) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True).filter(lambda v: len(v) <= limit)


@SETTINGS
@given(packages=_matching(grammar.PACKAGE_URL, 200), images=_matching(grammar.IMAGE_REPOSITORY, 100),
       name=_matching(DNS_LABEL, MAX_CLUSTER_NAME), group=_matching(DNS_LABEL, MAX_NODE_GROUP_NAME))
def test_whatever_validation_accepts_renders_harmlessly(packages: str, images: str, name: str, group: str,
                                                        tmp_path_factory: Any) -> None:
    """Values drawn from the grammars themselves: validation accepts them, and they render harmlessly."""
    tmp = tmp_path_factory.mktemp("accepted")
    doc = _doc(mirrors={"packages": packages, "imageRepository": images}, nodeGroups=[{"name": group}])
    doc["metadata"]["name"] = name
    spec = _load(doc)
    benign = _load(_doc(mirrors={"packages": "https://mirror.example/k8s", "imageRepository": "mirror.example/k8s"},
                        nodeGroups=[{"name": "general"}]))
    _safe(spec, f"kubeaws-{name}-0123456789", (benign, BUCKET), tmp)


FIELDS = {"packages": ("https://mirror.example/k8s", ["spec", "mirrors", "packages"]),
          "imageRepository": ("mirror.example/k8s", ["spec", "mirrors", "imageRepository"]),
          "name": ("dev", ["metadata", "name"]), "group": ("general", ["spec", "nodeGroups", 0, "name"]),
          "region": ("us-east-1", ["spec", "region"])}


@SETTINGS
@given(field=st.sampled_from(sorted(FIELDS)), at=st.integers(0, 30),
       piece=st.sampled_from([p for p in SHELL_PIECES if p not in ("~",)]))
def test_validation_rejects_shell_syntax_anywhere(field: str, at: int, piece: str) -> None:
    """Any piece of shell syntax, anywhere in a value that reaches a script, is a problem naming the field
    ('~' is allowed in a URL path, where it is an RFC 3986 unreserved character)."""
    base, path = FIELDS[field]
    value = base[:at] + piece + base[at:]
    doc = _doc(mirrors={})
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(SpecError) as info:
        _load(doc)
    assert format_path(path) in [p.path for p in info.value.problems]


def test_the_harness_catches_an_unquoted_value(tmp_path: Path) -> None:
    """The harness can fail: a template without the filter lets the payload run and is caught."""
    env = jinja2.Environment()
    snippet = env.from_string('PKG_BASE="{{ v }}"\n').render(v='x"$(echo y>canary)"')
    (tmp_path / "empty").mkdir()
    _, variables, canary = _run(snippet, tmp_path)
    assert canary and variables["PKG_BASE"] == ["x"]
    snippet = env.from_string("PKG_BASE={{ v }}\n").render(v=userdata.sh('x"$(echo y>canary)"'))
    _, variables, canary = _run(snippet, tmp_path)
    assert not canary and variables["PKG_BASE"] == ['x"$(echo y>canary)"']
