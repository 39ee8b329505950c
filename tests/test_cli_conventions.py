"""CLI conventions (issue #11 item 4): -h everywhere, `-o` is the output format everywhere, `--output
text|json|yaml`, `-f -` from stdin, `kubeaws version`, `kubeaws completion`, `-v` (the AWS call trace), camelCase
JSON, the status summary, tables not cut when piped, `apply --write-kubeconfig`, and golden help texts.

Goldens in tests/golden/cli: `kubeaws --help` and every command's help (fixed width, no colour), and
`kubeaws version --output yaml`. Regenerate with KUBEAWS_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from kubeaws.addons import versions as pins
from kubeaws.addons.descriptors import metrics_server
from kubeaws.aws.retry import RetryPolicy
from kubeaws.aws.session import AWS, AwsContext, AwsSettings, CallTrace
from kubeaws.casing import DATA_MAPS, SNAKE
from kubeaws.cli import output, status_view
from kubeaws.cli.common import OutputFormat
from kubeaws.cli.main import app
from kubeaws.spec.models import SUPPORTED_KUBERNETES_VERSIONS
from tests.conftest import EXAMPLES, REGION
from tests.helpers import make_spec, update_golden

DEV = EXAMPLES / "dev.yaml"
GOLDEN = Path(__file__).parent / "golden" / "cli"
runner = CliRunner()
KUBEAWS = Path(sys.executable).parent / "kubeaws"


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


def both(result: Result) -> str:
    return result.stdout + result.stderr


def commands(group: TyperGroup | None = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the CLI: (), ("plan",), ("local", "start"), ..."""
    group = group or root()
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def root() -> TyperGroup:
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    return command


def command_of(path: tuple[str, ...]) -> Any:
    command: Any = root()
    for name in path:
        command = command.commands[name]
    return command


ALL = list(commands())
LEAVES = [p for p in ALL if p and not isinstance(command_of(p), TyperGroup)]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if update_golden():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with KUBEAWS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from golden (KUBEAWS_UPDATE_GOLDEN=1 to regenerate)"


def snake_keys(doc: Any, where: str = "") -> list[str]:
    """Paths of snake_case keys in a JSON document, outside the maps whose keys are data."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(key, str) and SNAKE.fullmatch(key):
                found.append(f"{where}.{key}")
            if not (isinstance(key, str) and key in {*DATA_MAPS, *(k for k in map(_camel, DATA_MAPS))}):
                found += snake_keys(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for item in doc:
            found += snake_keys(item, f"{where}[]")
    return found


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


# -- help, -h, option letters -------------------------------------------------------------------------------
@pytest.fixture
def fixed_help(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Help rendered the same on every machine: 100 columns, no colour, whatever the environment says."""
    from typer import rich_utils

    monkeypatch.setattr(rich_utils, "MAX_WIDTH", 100)
    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", False)
    monkeypatch.setattr(rich_utils, "COLOR_SYSTEM", None)
    return {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "kubeaws")
def test_help_golden_and_short_h(path: tuple[str, ...], fixed_help: dict[str, str]) -> None:
    long = invoke(*path, "--help", env=fixed_help)
    assert long.exit_code == 0, both(long)
    short = invoke(*path, "-h", env=fixed_help)
    assert short.exit_code == 0, both(short)
    assert short.stdout == long.stdout
    assert "Usage:" in long.stdout and "\x1b[" not in long.stdout
    text = "".join(line.rstrip() + "\n" for line in long.stdout.strip("\n").splitlines())  # rich pads lines
    check_golden(("_".join(path) or "kubeaws") + ".txt", text)


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_letters_mean_the_same_on_every_command(path: tuple[str, ...]) -> None:
    """-o is --output (text|json|yaml) wherever it exists, and every command with --output has -o; -f is
    --file; -h is help; -v is nowhere but the root (the global --debug)."""
    options = {opt: param for param in command_of(path).params for opt in param.opts + param.secondary_opts}
    if "--output" in options:
        assert "-o" in options, f"kubeaws {' '.join(path)}: --output without -o"
    if "-o" in options:
        param = options["-o"]
        assert "--output" in param.opts
        assert param.type_descriptor.annotation is OutputFormat
        assert {f.value for f in OutputFormat} == {"text", "json", "yaml"}
    if "-f" in options:
        assert "--file" in options["-f"].opts
    assert "-v" not in options
    assert "-d" not in options or "--output-dir" in options["-d"].opts


PRINTING = [p for p in LEAVES if p not in {("completion",), ("token",)}]


@pytest.mark.parametrize("path", PRINTING, ids=" ".join)
def test_every_result_printing_command_has_output(path: tuple[str, ...]) -> None:
    options = {opt for param in command_of(path).params for opt in param.opts}
    assert "--output" in options, f"kubeaws {' '.join(path)} has no --output"


def test_root_debug_option_is_global() -> None:
    opts = {opt for param in root().params for opt in param.opts}
    assert {"-v", "--debug", "--version"} <= opts


# -- version, completion ----------------------------------------------------------------------------------
def test_version_lists_pins() -> None:
    result = invoke("version", "-o", "json")
    assert result.exit_code == 0, both(result)
    doc = json.loads(result.stdout)
    assert doc["kubernetesVersions"] == list(SUPPORTED_KUBERNETES_VERSIONS)
    assert {m: v["patch"] for m, v in doc["kubernetes"].items()} == \
        {m: pins.kubernetes_patch(m) for m in SUPPORTED_KUBERNETES_VERSIONS}
    assert doc["addons"]["calico"] == pins.CALICO_VERSION and doc["addons"]["cilium"] == pins.CILIUM_VERSION
    assert doc["addons"]["metricsServer"] == metrics_server.IMAGE
    text = invoke("version")
    assert text.exit_code == 0 and text.stdout.startswith(f"kubeaws {doc['version']}\n")
    for minor in SUPPORTED_KUBERNETES_VERSIONS:
        assert f"{minor}: {pins.kubernetes_patch(minor)}" in text.stdout


def test_version_yaml_golden() -> None:
    result = invoke("version", "--output", "yaml")
    assert result.exit_code == 0, both(result)
    assert yaml.safe_load(result.stdout) == json.loads(invoke("version", "-o", "json").stdout)
    check_golden("version.yaml", result.stdout)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str, tmp_path: Path) -> None:
    result = invoke("completion", shell)
    assert result.exit_code == 0, both(result)
    assert "_KUBEAWS_COMPLETE" in result.stdout and "kubeaws" in result.stdout
    if shell == "bash":
        script = tmp_path / "kubeaws.bash"
        script.write_text(result.stdout)
        checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_completion_answers_the_bash_script() -> None:
    """What the bash script runs: kubeaws with _KUBEAWS_COMPLETE=complete_bash completes commands and options."""
    env = {**os.environ, "_KUBEAWS_COMPLETE": "complete_bash", "COMP_WORDS": "kubeaws sta", "COMP_CWORD": "1"}
    done = subprocess.run([str(KUBEAWS)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "status" in done.stdout.split()
    env.update(COMP_WORDS="kubeaws plan --out", COMP_CWORD="2")
    done = subprocess.run([str(KUBEAWS)], env=env, capture_output=True, text=True, timeout=60)
    assert "--output" in done.stdout.split()


# -- -f - ---------------------------------------------------------------------------------------------------
def test_spec_from_stdin() -> None:
    result = invoke("doctor", "-f", "-", "-o", "json", input=DEV.read_text())
    assert "summary" in json.loads(result.stdout), both(result)


def test_spec_from_stdin_errors_name_stdin_and_line() -> None:
    broken = DEV.read_text().replace("apiVersion: kubeaws.io/v1alpha1", "apiVersion: kubeaws.io/v1alpha1\nbogus: 1")
    result = invoke("doctor", "-f", "-", input=broken)
    assert result.exit_code == 2, both(result)
    assert re.search(r"<stdin>:\d+", both(result)), both(result)
    assert "Traceback" not in both(result)


def test_render_json_lists_files(tmp_path: Path) -> None:
    result = invoke("render", "-f", str(DEV), "-d", str(tmp_path / "out"), "-o", "json")
    assert result.exit_code == 0, both(result)
    doc = json.loads(result.stdout)
    assert doc["directory"] == str(tmp_path / "out") and doc["files"]
    assert all((tmp_path / "out" / f).is_file() for f in doc["files"])


def test_init_structured_output_is_the_spec() -> None:
    result = invoke("init", "--name", "demo", "--region", REGION, "-o", "yaml")
    assert result.exit_code == 0, both(result)
    doc = yaml.safe_load(result.stdout)
    assert doc["metadata"]["name"] == "demo" and doc["spec"]["region"] == REGION


# -- -v: the AWS call trace ---------------------------------------------------------------------------------
TRACE_LINE = re.compile(r"aws [a-z0-9-]+\.[A-Z][A-Za-z0-9]+ (\d{3}( [A-Za-z0-9.]+)?|[A-Za-z]+Error) \d+ ms")


def test_trace_lines_status_error_code_and_connection_error(endpoint: str) -> None:
    stream = io.StringIO()
    ctx = AwsContext(AwsSettings(REGION, endpoint_url=endpoint), "dev", RetryPolicy(max_attempts=1))
    CallTrace(stream).register(ctx._session)
    ctx.call("ec2", "describe_vpcs")
    with pytest.raises(Exception, match="NotFound"):
        ctx.call("ec2", "describe_vpcs", VpcIds=["vpc-00000000000000000"])
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"aws ec2\.DescribeVpcs 200 \d+ ms", lines[0]), lines
    assert re.fullmatch(r"aws ec2\.DescribeVpcs 400 InvalidVpcID\.NotFound \d+ ms", lines[1]), lines

    down = io.StringIO()
    closed = AwsContext(AwsSettings(REGION, endpoint_url="http://127.0.0.1:9"), "dev", RetryPolicy(max_attempts=1))
    CallTrace(down).register(closed._session)
    with pytest.raises(Exception):  # noqa: B017 - whichever botocore raises for a refused connection
        closed.client("ec2").describe_vpcs()
    assert re.fullmatch(r"aws ec2\.DescribeVpcs EndpointConnectionError \d+ ms", down.getvalue().strip())


def test_debug_option_traces_every_call_to_stderr_without_secrets(endpoint: str) -> None:
    result = invoke("-v", "plan", "-f", str(DEV), "-o", "json", "--force")
    assert result.exit_code == 0, both(result)
    json.loads(result.stdout)  # stdout stays one document
    lines = [line for line in result.stderr.splitlines() if line.startswith("aws ")]
    assert len(lines) > 10 and all(TRACE_LINE.fullmatch(line) for line in lines), lines[:5]
    assert any(line.startswith("aws ec2.DescribeVpcs 200 ") for line in lines)
    for secret in (os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]):
        assert secret not in result.stderr
    quiet = invoke("plan", "-f", str(DEV), "-o", "json", "--force")
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("aws ")]


# -- JSON/YAML documents --------------------------------------------------------------------------------------
def test_plan_yaml_is_the_json_document_in_camel_case(endpoint: str) -> None:
    as_json = invoke("plan", "-f", str(EXAMPLES / "ha.yaml"), "-o", "json", "--force")
    assert as_json.exit_code == 0, both(as_json)
    doc = json.loads(as_json.stdout)
    as_yaml = invoke("plan", "-f", str(EXAMPLES / "ha.yaml"), "-o", "yaml", "--force")
    assert yaml.safe_load(as_yaml.stdout) == doc
    assert doc["changes"] and not snake_keys(doc), snake_keys(doc)[:10]
    lt = next(c for c in doc["changes"] if c["kind"] == "LaunchTemplate")
    assert "instanceType" in lt["diff"] and "instance_type" not in lt["diff"]
    tags = next(c["diff"]["instanceTags"][1] for c in doc["changes"] if "instanceTags" in c["diff"])
    assert "kubernetes.io/cluster/prod-ha" in tags  # data keys kept as they are


def test_errors_are_documents_in_yaml_too(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("plan", "-f", str(missing), "-o", "yaml")
    assert result.exit_code == 2
    assert yaml.safe_load(result.stdout)["error"].startswith("spec file not found")


# -- status summary, width --------------------------------------------------------------------------------
def test_status_summary_and_camel_case(endpoint: str, ctx: AwsContext, tmp_path: Path) -> None:
    from kubeaws import api

    spec = make_spec()
    assert api.apply(spec, ctx).ok
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(by_alias=True, exclude_none=True), sort_keys=False))
    result = invoke("status", "-f", str(spec_file), "-o", "json")
    text = invoke("status", "-f", str(spec_file))
    assert result.exit_code == 0, both(result)
    doc = json.loads(result.stdout)
    head = doc["summary"]
    assert head["mode"] == "kubeadm" and head["kubernetesVersion"] == spec.spec.kubernetes_version
    assert head["endpoint"].startswith("https://") and head["endpoint"].endswith(":6443")
    groups = {g["name"]: g for g in head["groups"]}
    for group in spec.spec.node_groups:
        assert groups[group.name]["desired"] == group.size.desired
        assert groups[group.name]["inService"] == group.size.desired
        assert groups[group.name]["ready"] is None  # moto: no Kubernetes API
    assert "emulator" in head["readyFrom"]
    assert not snake_keys(doc), snake_keys(doc)[:10]
    assert text.exit_code == 0, both(text)
    first = text.stdout.splitlines()[0]
    assert first.startswith("Mode: kubeadm") and head["endpoint"] in first
    assert "…" not in text.stdout  # piped: nothing cut


def test_ready_counts_nodes_by_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ready comes from the nodes' Ready condition, matched to groups through spec.providerID."""
    nodes = [{"spec": {"providerID": "aws:///us-east-1a/i-1"}, "status": {"conditions": [{"type": "Ready",
                                                                                          "status": "True"}]}},
             {"spec": {"providerID": "aws:///us-east-1b/i-2"}, "status": {"conditions": [{"type": "Ready",
                                                                                          "status": "False"}]}},
             {"spec": {"providerID": "aws:///us-east-1a/i-3"}, "status": {"conditions": [{"type": "Ready",
                                                                                          "status": "True"}]}}]

    class Kube:
        def list_nodes(self) -> list[dict[str, Any]]:
            return nodes

    @contextmanager
    def fake_client(*_: Any, **__: Any) -> Iterator[Kube]:
        yield Kube()

    class Ctx:
        capabilities = AWS

    import kubeaws.reach

    monkeypatch.setattr(kubeaws.reach, "api_client", fake_client)
    spec = make_spec(access={"apiEndpoint": "public"})
    groups = [{"name": "general", "instances": ["i-1", "i-2"]}, {"name": "control-plane-0", "instances": ["i-3"]}]
    ready, source = status_view._ready(spec, Ctx(), groups)  # type: ignore[arg-type]
    assert ready == {"general": 1, "control-plane-0": 1} and source == "kubernetes API"
    private = make_spec(access={"apiEndpoint": "private"})
    assert status_view._ready(private, Ctx(), groups)[0] is None  # type: ignore[arg-type]


def test_piped_tables_are_not_cut(capsys: pytest.CaptureFixture[str]) -> None:
    long_id = "x" * 300
    out = output.Out()
    output._tables(out, {"Thing": [{"name": "n" * 150, "id": long_id, "state": "ok", "someAttribute": "y" * 120}]})
    printed = capsys.readouterr().out
    assert long_id in printed and "n" * 150 in printed and "y" * 120 in printed and "…" not in printed


# -- apply --write-kubeconfig -----------------------------------------------------------------------------------
def test_apply_write_kubeconfig_merges_and_sets_current(endpoint: str, tmp_path: Path) -> None:
    spec = make_spec()
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(by_alias=True, exclude_none=True), sort_keys=False))
    target = tmp_path / "kube" / "config"
    target.parent.mkdir()
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "other",
             "clusters": [{"name": "other", "cluster": {"server": "https://other.example:6443"}}],
             "users": [{"name": "other-admin", "user": {"token": "t"}}],
             "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other-admin"}}]}
    target.write_text(yaml.safe_dump(other))
    target.chmod(0o644)
    result = invoke("apply", "-f", str(spec_file), "--yes", "--no-rollout", "--force", "--write-kubeconfig",
                    "--kubeconfig", str(target), "-o", "json")
    assert result.exit_code == 0, both(result)
    doc = json.loads(result.stdout)
    merged = yaml.safe_load(target.read_text())
    assert doc["kubeconfig"]["file"] == str(target) and merged["current-context"] == doc["kubeconfig"]["context"]
    assert {c["name"] for c in merged["contexts"]} == {"other", doc["kubeconfig"]["context"]}
    assert [c for c in merged["clusters"] if c["name"] == "other"] == other["clusters"]
    assert target.stat().st_mode & 0o777 == 0o600
    # Nothing left to apply: the kubeconfig is still written when asked (here into $KUBECONFIG).
    fresh = tmp_path / "fresh" / "config"
    again = runner.invoke(app, ["apply", "-f", str(spec_file), "--yes", "--force", "--write-kubeconfig"],
                          env={"KUBECONFIG": f"{fresh}{os.pathsep}{target}"})
    assert again.exit_code == 0, both(again)
    assert "Nothing to apply" in again.stdout
    assert yaml.safe_load(fresh.read_text())["current-context"] == doc["kubeconfig"]["context"]
    assert fresh.stat().st_mode & 0o777 == 0o600
