"""Loading specs (spec.load): YAML and structural errors with paths, lines and hints; examples, init templates
and the JSON Schema; and the promise that nothing but SpecError ever leaves the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeaws.errors import FieldProblem, SpecError
from kubeaws.spec.load import load_spec, load_spec_text
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.schema import json_schema
from kubeaws.spec.template import render_init
from tests.conftest import EXAMPLES

GOOD = """\
apiVersion: kubeaws.io/v1alpha1
kind: Cluster
metadata:
  name: dev
spec:
  region: us-east-1
  kubernetesVersion: "1.31"
  network:
    availabilityZones: [us-east-1a, us-east-1b]
  access:
    adminCIDRs: [203.0.113.0/24]
  nodeGroups:
    - name: general
      size: {min: 1, desired: 2, max: 5}
    - name: spot
      capacity: spot
"""


def problems(text: str) -> list[FieldProblem]:
    try:
        load_spec_text(text, "t.yaml")
    except SpecError as exc:
        assert exc.source == "t.yaml"
        return exc.problems
    return []


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def test_good_spec_loads() -> None:
    spec = load_spec_text(GOOD)
    assert isinstance(spec, ClusterSpec)
    assert spec.name == "dev"
    assert spec.spec.network.pod_cidr == "192.168.0.0/16"
    assert spec.spec.cni == "calico"
    assert spec.spec.network.nat_mode == "single"
    assert [g.name for g in spec.spec.node_groups] == ["general", "spot"]


# (id, yaml text, expected path, message fragment, hint fragment, line)
CASES: list[tuple[str, str, str, str, str, int | None]] = [
    ("syntax", edit("  region: us-east-1\n", "  region: us-east-1\n   oops: [\n"), "", "YAML syntax error", "",
     None),
    ("syntax-indent", edit('  kubernetesVersion: "1.31"\n', '  kubernetesVersion: "1.31"\n    bad: 1\n'), "",
     "YAML syntax error", "indentation", 8),
    ("tab", "a:\n\t- 1\n", "", "YAML syntax error", "", 2),
    ("two-documents", GOOD + "---\n" + GOOD, "", "several YAML documents", "one document", None),
    ("python-tag", "a: !!python/object/apply:os.system [ls]\n", "", "YAML syntax error", "remove the tag", 1),
    ("control-char", "a: b\x00\n", "", "character YAML does not allow", "UTF-8", None),
    ("self-alias", "a: &x [*x]\n", "", "refers to itself", "recursive", 1),
    ("empty", "", "", "empty", "kubeaws init", None),
    ("only-comments", "# nothing here\n", "", "empty", "kubeaws init", None),
    ("list", "- apiVersion: kubeaws.io/v1alpha1\n", "", "is a list, not a mapping", "top level", 1),
    ("scalar", "hello\n", "", "is a string, not a mapping", "top level", 1),
    ("number", "42\n", "", "not a mapping", "", 1),
    ("wrong-api-version", edit("kubeaws.io/v1alpha1", "kubeaws.io/v1"), "apiVersion", "not an allowed value",
     "apiVersion: kubeaws.io/v1alpha1", 1),
    ("wrong-kind", edit("kind: Cluster", "kind: Deployment"), "kind", "not an allowed value", "kind: Cluster", 2),
    ("missing-api-version", GOOD.split("\n", 1)[1], "apiVersion", "missing", "apiVersion: kubeaws.io/v1alpha1",
     1),
    ("missing-region", edit("  region: us-east-1\n", ""), "spec.region", "missing", "region:", 5),
    ("null-region", edit("  region: us-east-1\n", "  region:\n"), "spec.region", "expected a string",
     "give it a value", 6),
    ("version-float", edit('"1.31"', "1.30"), "spec.kubernetesVersion", "expected a string", '"1.30"', 7),
    ("name-number", edit("name: dev", "name: 2024"), "metadata.name", "expected a string", '"2024"', 4),
    ("name-date", edit("name: dev", "name: 2024-01-01"), "metadata.name", "expected a string", '"2024-01-01"', 4),
    ("groups-not-list", edit("  nodeGroups:\n", "  nodeGroups: general\n  x:\n"), "spec.nodeGroups",
     "expected a list", "YAML list", 12),
    ("size-not-number", edit("min: 1,", "min: one,"), "spec.nodeGroups[0].size.min", "whole number", "3", 14),
    ("size-negative", edit("min: 1,", "min: -1,"), "spec.nodeGroups[0].size.min", "greater than or equal",
     ">= 0", 14),
    ("size-order", edit("max: 5", "max: 1"), "spec.nodeGroups[0].size", "min <= desired <= max", "min <=", 14),
    ("network-list", edit("  network:\n    availabilityZones: [us-east-1a, us-east-1b]\n", "  network: [a]\n"),
     "spec.network", "expected a mapping", "key: value", 8),
    ("bool-as-string", edit("  access:\n", "  access:\n    allowWorldAccess: maybe\n"),
     "spec.access.allowWorldAccess", "true or false", "true or false", 11),
    ("enum-case", edit("capacity: spot", "capacity: Spot"), "spec.nodeGroups[1].capacity",
     "not an allowed value", "did you mean `spot`", 16),
    ("enum-values", edit("capacity: spot", "capacity: reserved"), "spec.nodeGroups[1].capacity",
     "not an allowed value", "on-demand, spot", 16),
    ("empty-instance-types", edit("capacity: spot", "instanceTypes: []"), "spec.nodeGroups[1].instanceTypes",
     "at least 1", "at least 1", 16),
    ("unknown-camel", edit("  network:\n", "  network:\n    podCidr: 10.0.0.0/16\n"), "spec.network.podCidr",
     "unknown field `podCidr`", "did you mean `podCIDR`?", 9),
    ("unknown-snake", edit("  network:\n", "  network:\n    pod_cidr: 10.0.0.0/16\n"), "spec.network.pod_cidr",
     "unknown field", "did you mean `podCIDR`?", 9),
    ("unknown-typo", edit("capacity: spot", "instanceType: m5.large"), "spec.nodeGroups[1].instanceType",
     "unknown field", "did you mean `instanceTypes`?", 16),
    ("unknown-top", GOOD + "status: {}\n", "status", "unknown field", "apiVersion, kind, metadata, spec", 17),
    ("unknown-far", edit("  access:\n", "  access:\n    zzz: 1\n"), "spec.access.zzz", "unknown field",
     "fields allowed here: apiEndpoint", 11),
    ("non-string-key", edit("  access:\n", "  access:\n    1: x\n"), "spec.access", "must be a string", "quote",
     10),
    ("vpc-both", edit("  network:\n", "  network:\n    vpc: {cidr: 10.0.0.0/16, id: vpc-0abc1234}\n"),
     "spec.network.vpc", "not both", "cidr", 9),
    ("duplicate-key", edit("  region: us-east-1\n", "  region: us-east-1\n  region: us-east-2\n"), "spec.region",
     "appears twice", "keep one", 7),
]


@pytest.mark.parametrize(("text", "path", "message", "hint", "line"),
                         [pytest.param(t, p, m, h, ln, id=i) for i, t, p, m, h, ln in CASES])
def test_load_problem(text: str, path: str, message: str, hint: str, line: int | None) -> None:
    found = problems(text)
    hits = [p for p in found if (p.path == path or p.path.startswith(path + "[")) and message in p.message]
    assert hits, "\n".join(p.render("t.yaml") for p in found)
    problem = hits[0]
    assert hint in problem.hint
    if hint or path:
        assert problem.hint, "every problem says how to fix it"
    if line is not None:
        assert problem.line == line, problem.render("t.yaml")


def test_several_problems_reported_together() -> None:
    text = edit("  region: us-east-1\n", "  region: us-east-1\n  regoin: x\n")
    text = text.replace("capacity: spot", "capacity: cheap").replace("min: 1,", "min: x,")
    found = problems(text)
    paths = {p.path for p in found}
    assert {"spec.regoin", "spec.nodeGroups[1].capacity", "spec.nodeGroups[0].size.min"} <= paths
    rendered = str(SpecError(found, "t.yaml"))
    assert "3 problem(s)" in rendered and "t.yaml:7:" in rendered
    lines = [p.line or 0 for p in found]
    assert lines == sorted(lines)


def test_semantic_problems_reported_together_with_lines() -> None:
    text = edit("name: dev", "name: Dev").replace("us-east-1b]", "us-east-1b, us-east-1b]")
    text = text.replace("- name: spot", "- name: general")
    found = {p.path: p for p in problems(text)}
    assert found["metadata.name"].line == 4
    assert found["spec.network.availabilityZones[2]"].line == 9
    assert found["spec.nodeGroups[1].name"].line == 15
    assert "nodeGroups[0]" in found["spec.nodeGroups[1].name"].message


def test_field_and_cross_field_problems_in_one_report() -> None:
    """Two field errors (pydantic) and two cross-field rules (spec.validate) come out at once, each with its
    line: the rules run on the document with the fields in error taken out."""
    text = edit('  kubernetesVersion: "1.31"\n', "  kubernetesVersion: 1.31\n")  # a float: field error
    text = text.replace("capacity: spot", "capacity: cheap")  # field error
    text = text.replace("availabilityZones: [us-east-1a, us-east-1b]",  # cross-field: AZ of another region
                        "availabilityZones: [us-east-1a, us-west-2b]\n    serviceCIDR: 10.0.0.0/12")  # overlaps VPC
    found = problems(text)
    by_path = {p.path: p for p in found}
    assert set(by_path) == {"spec.kubernetesVersion", "spec.nodeGroups[1].capacity",
                            "spec.network.availabilityZones[1]", "spec.network.serviceCIDR"}, found
    assert [by_path[p].line for p in ("spec.kubernetesVersion", "spec.network.availabilityZones[1]",
                                      "spec.network.serviceCIDR", "spec.nodeGroups[1].capacity")] == [7, 9, 10, 17]
    assert "overlaps vpc.cidr" in by_path["spec.network.serviceCIDR"].message
    assert all(p.hint for p in found)
    assert "4 problem(s)" in str(SpecError(found, "t.yaml"))


def test_a_rule_reading_a_field_in_error_waits_for_the_fix() -> None:
    """vpc.cidr in error: its default stands in while the rules run, so no overlap with it is claimed."""
    text = edit("    availabilityZones: [us-east-1a, us-east-1b]\n",
                "    availabilityZones: [us-east-1a, us-east-1b]\n    vpc: {cidr: [10.0.0.0/16]}\n"
                "    serviceCIDR: 10.0.0.0/12\n    podCIDR: 10.0.0.0/8\n")
    paths = {p.path for p in problems(text)}
    assert "spec.network.vpc.cidr" in paths
    assert "spec.network.serviceCIDR" in paths  # podCIDR 10/8 holds it: a rule between two fields not in error
    found = {p.path: p for p in problems(text)}
    assert "vpc.cidr" not in found["spec.network.serviceCIDR"].message


def test_a_required_field_in_error_still_reports_every_field_problem() -> None:
    text = edit("  region: us-east-1\n", "  region: [us-east-1]\n").replace("capacity: spot", "capacity: x")
    assert {p.path for p in problems(text)} == {"spec.region", "spec.nodeGroups[1].capacity"}


def test_max_pods_problem_has_its_line() -> None:
    """Rules reading instance-type facts run while loading (table types), not in the model without a line."""
    text = edit("  nodeGroups:\n", "  mode: eks\n  nodeGroups:\n").replace("capacity: spot",
                                                                            "capacity: spot\n      maxPods: 200")
    (problem,) = [p for p in problems(text) if p.path == "spec.nodeGroups[1].maxPods"]
    assert problem.line == 18 and "(29)" in problem.message


def test_snake_case_keys_are_not_accepted_in_yaml() -> None:
    text = edit('  kubernetesVersion: "1.31"\n', '  kubernetes_version: "1.31"\n')
    assert [p.hint for p in problems(text)] == ["did you mean `kubernetesVersion`?"]


def test_load_spec_file(tmp_path: Path) -> None:
    good = tmp_path / "cluster.yaml"
    good.write_text(GOOD, encoding="utf-8")
    assert load_spec(good).name == "dev"
    assert load_spec(str(good)).name == "dev"
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("kind: Cluster", "kind: Nope"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.source == str(bad)
    assert f"{bad}:2:" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "latin-1"])
def test_unreadable_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cluster.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "latin-1":
        path.write_bytes(GOOD.replace("dev", "d\xe9v").encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].hint


GARBAGE: list[str] = [
    "[]", "[1, 2, 3]", "null", "~", "true", "3.14", "'just a string'", "!!binary aGVsbG8=", "{}",
    "\x7f\x80\x81", "\ufeff", "\u2028\u2029", "a: b: c", "{{{{", "]]]", "&a *a", "%YAML 9.9\n---\na: 1",
    "[" * 5000 + "]" * 5000, "a:\n" + "  " * 1 + "- " * 2000 + "x",
    # Deep enough to crash libyaml's C composer (~20,000 levels): must go to the pure-Python parser.
    "[" * 60000 + "]" * 60000, "- " * 60000 + "x",
    "apiVersion: [kubeaws.io/v1alpha1]\nkind: {Cluster: 1}\nmetadata: [[name]]\nspec: 7",
    "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: {a: b}}\nspec: {region: [1], nodeGroups: {a: 1}}",
    "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: x, labels: [1]}\n"
    "spec: {region: us-east-1, nodeGroups: [1, null, [], {name: null, size: 5, taints: [x], labels: {null: 1}}],"
    " network: {vpc: null, availabilityZones: {a: 1}, podCIDR: 7}, tags: {? [a] : b}}",
    "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: x}\nspec: {region: us-east-1, "
    "addons: {ebsCSI: &o {a: [*o]}}}",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
    "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: x}\n"
    "spec: {region: us-east-1, network: {vpc: {cidr: '::/0'}, podCIDR: '1.2.3.4/99', serviceCIDR: ''}}",
    "apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata: {name: x}\n"
    "spec: {region: '', network: {availabilityZones: ['', 'a'], vpc: {cidr: 10.0.0.0/16}, privateSubnetPrefix: 16,"
    " publicSubnetPrefix: 16}, controlPlane: {count: -1}}",
]


@pytest.mark.parametrize("text", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_raises_only_spec_error(text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert info.value.problems
    assert all(isinstance(p, FieldProblem) and p.message and p.hint for p in info.value.problems)
    str(info.value)  # renders


@pytest.mark.parametrize("text", ["apiVersion: kubeaws.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: x\n"
                                  "spec:\n  region: us-east-1\n  network: {vpc: {cidr: 10.0.0.0/16}\n",
                                  "a: 1\nb:\n  - c\n d: 2\n", "a: 'open\n"])
def test_both_yaml_parsers_report_the_same_line(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small documents are parsed by libyaml, deep ones by the pure-Python parser: errors must not differ
    in the line they name."""
    from kubeaws.spec import load as load_module

    with pytest.raises(SpecError) as fast:
        load_spec_text(text)
    monkeypatch.setattr(load_module, "C_PARSER_MAX_DEPTH", -1)
    with pytest.raises(SpecError) as slow:
        load_spec_text(text)
    assert [(p.path, p.line) for p in fast.value.problems] == [(p.path, p.line) for p in slow.value.problems]
    assert all(p.line for p in fast.value.problems)


def test_non_text_input_raises_spec_error() -> None:
    for value in (b"\xff\xfe", 42, None):
        with pytest.raises(SpecError):
            load_spec_text(value)  # type: ignore[arg-type]


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {"dev.yaml", "ha.yaml", "eks.yaml"}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_loads_clean(path: Path) -> None:
    spec = load_spec(path)
    if path.name == "ha.yaml":
        assert spec.spec.control_plane.count == 3 and len(spec.spec.node_groups) == 10
        assert spec.spec.network.nat_mode == "perAZ" and spec.spec.cni == "cilium"
        assert any(g.extra_volumes for g in spec.spec.node_groups if g.name == "storage")
    if path.name == "eks.yaml":
        assert spec.spec.mode == "eks" and {g.type for g in spec.spec.node_groups} == {"managed", "self-managed"}


@pytest.mark.parametrize("mode", ["kubeadm", "eks"])
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"])
def test_init_template_loads_clean(mode: str, region: str) -> None:
    text = render_init("my-cluster", region, mode)
    spec = load_spec_text(text, "init.yaml")
    assert spec.name == "my-cluster" and spec.spec.region == region and spec.spec.mode == mode
    assert spec.spec.network.availability_zones == [f"{region}a", f"{region}b", f"{region}c"]
    assert spec.spec.cni == ("aws-vpc-cni" if mode == "eks" else "calico")
    assert spec.spec.access.bastion.enabled and spec.spec.access.api_endpoint == "private"
    assert [(g.name, g.size.min, g.size.desired, g.size.max) for g in spec.spec.node_groups] == \
        [("default", 1, 2, 5)]
    assert spec.spec.addons.metrics_server is not None and spec.spec.addons.ebs_csi is not None
    assert "# tags:" in text and "adjust to your account's AZs" in text


def test_init_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="kubeadm or eks"):
        render_init("x", "us-east-1", "gke")


def test_schema() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "kubeaws.io/v1alpha1" in schema["title"] and schema["$id"]
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
    network = schema["$defs"]["NetworkSpec"]["properties"]
    assert {"podCIDR", "serviceCIDR", "nodePortCIDRs", "availabilityZones"} <= set(network)


def test_schema_accepts_examples_and_rejects_typos() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    docs: list[Any] = [yaml.safe_load(p.read_text()) for p in EXAMPLE_FILES]
    docs.append(yaml.safe_load(render_init("x", "us-east-1", "eks")))
    for doc in docs:
        assert not list(validator.iter_errors(doc))
    bad = yaml.safe_load(GOOD.replace("  network:\n", "  network:\n    podCidr: 10.0.0.0/16\n"))
    assert list(validator.iter_errors(bad))
