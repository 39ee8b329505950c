"""Bounded, precise errors for any input (issue #10, item 8).

Each case the fuzzing found, then a hypothesis fuzz of random YAML documents through `kubeaws plan`'s spec
loading (the AWS connection is replaced by a stand-in that stops the command: no AWS call is made): the command
exits 2 with problems or gets past the spec, never shows a traceback, keeps every problem under 2 KB, and names a
line for every problem inside the document.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kubeaws.cli.main import app
from kubeaws.errors import FieldProblem, KubeawsError, SpecError
from kubeaws.spec.load import MAX_PROBLEMS, VALUE_LIMIT, load_spec_text
from tests.helpers import BASE, merge

PROBLEM_LIMIT = 2048


def _text(**spec: Any) -> str:
    return yaml.safe_dump(merge(BASE, {"spec": spec}))


def _problems(text: str) -> list[FieldProblem]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "cluster.yaml")
    problems = info.value.problems
    for p in problems:
        assert len(p.render("cluster.yaml")) < PROBLEM_LIMIT
        assert p.line is not None, p
    return problems


@pytest.mark.parametrize(("field", "value"), [("max", 10**19), ("desired", 10**19), ("min", 5001)])
def test_group_sizes_are_bounded(field: str, value: int) -> None:
    size = {"min": 0, "desired": 0, "max": 10, field: value}
    problems = _problems(_text(nodeGroups=[{"name": "general", "size": size}]))
    assert any(p.path == f"spec.nodeGroups[0].size.{field}" and "5000" in p.message for p in problems)


@pytest.mark.parametrize(("spec", "path"), [
    ({"controlPlane": {"count": 10**19}}, "spec.controlPlane.count"),
    ({"controlPlane": {"rootVolume": {"size": 10**6}}}, "spec.controlPlane.rootVolume.size"),
    ({"controlPlane": {"rootVolume": {"size": 100, "iops": 10**9}}}, "spec.controlPlane.rootVolume.iops"),
    ({"controlPlane": {"rootVolume": {"size": 100, "throughput": 10**9}}}, "spec.controlPlane.rootVolume.throughput"),
    ({"nodeGroups": [{"name": "g", "maxPods": 10**6}]}, "spec.nodeGroups[0].maxPods"),
    ({"nodeGroups": [{"name": "g", "rollout": {"maxSurge": 10**19}}]}, "spec.nodeGroups[0].rollout"),
    ({"etcdBackup": {"keep": 10**19}}, "spec.etcdBackup.keep"),
    ({"network": {"availabilityZones": [f"us-east-1{c}" for c in "abcdefghij"]}}, "spec.network.availabilityZones"),
])
def test_numbers_and_counts_are_bounded(spec: dict[str, Any], path: str) -> None:
    assert path in [p.path for p in _problems(_text(**spec))]


@pytest.mark.parametrize("addon", ["cloudProviderAWS", "ebsCSI", "metricsServer", "clusterAutoscaler", "rookCeph"])
def test_unknown_addon_options_are_errors(addon: str) -> None:
    problems = _problems(_text(addons={addon: {"replicas": 3}}))
    assert [(p.path, p.message) for p in problems] == [(f"spec.addons.{addon}.replicas", "unknown field `replicas`")]


def test_rook_node_selector_is_a_label() -> None:
    assert _problems(_text(addons={"rookCeph": {"nodeSelector": {"role": "a b"}}}))[0].path == \
        'spec.addons.rookCeph.nodeSelector.role'


def test_a_huge_value_is_cut_in_the_message() -> None:
    problems = _problems(_text(region="x" * 300_000))
    assert any(p.path == "spec.region" for p in problems)
    assert all(len(p.message) < 3 * VALUE_LIMIT for p in problems)
    assert "…" in next(p.message for p in problems if p.path == "spec.region")


def test_many_problems_are_capped() -> None:
    problems = _problems(_text(tags={f"aws:k{i}": "v" for i in range(500)}))
    assert len(problems) == MAX_PROBLEMS + 1 and "more problem(s) not shown" in problems[-1].message


@pytest.mark.parametrize("tag", ["!!float abc", "!!int x", "!!timestamp zz", "!!binary 'a'", "!!bool maybe",
                                 "!!python/object:os.system x"])
def test_a_tag_that_cannot_be_read_is_a_yaml_problem_with_its_line(tag: str) -> None:
    text = _text() + f"  extra: {tag}\n"
    problems = _problems(text)
    assert problems[0].line == len(text.splitlines()) and "YAML" in problems[0].message


@pytest.mark.parametrize("char", ["\x01", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_characters_name_their_line(char: str) -> None:
    text = _text() + f"  extra: a{char}b\n"
    assert _problems(text)[0].line == len(text.splitlines())


def test_escaped_control_characters_in_values_are_shown_escaped() -> None:
    problems = _problems(_text() + '  region: "us\\e[31m\\u202e-east-1"\n')
    region = next(p for p in problems if p.path == "spec.region" and "region" in p.message)
    assert "\x1b" not in region.message and "\\x1b" in region.message and "\u202e" not in region.message


def test_deep_nesting_names_its_line() -> None:
    text = _text() + "  extra: " + "[" * 5000 + "]" * 5000 + "\n"
    problems = _problems(text)
    assert problems[0].line == len(text.splitlines()) and "nested" in problems[0].message


def test_an_alias_bomb_names_its_line() -> None:
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    problems = _problems(_text() + "\n".join(lines) + "\n")
    assert "expands" in problems[0].message and problems[0].line is not None


# -- the fuzz: random YAML documents through `kubeaws plan` ---------------------------------------------
class _NoAws(KubeawsError):
    pass


def _connect(*_: Any, **__: Any) -> Any:
    raise _NoAws("spec accepted; this test makes no AWS call")


SCALARS = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["us-east-1", "1.31", "10.0.0.0/16", "m5.large", "x" * 5000]))
KEYS = st.sampled_from(["apiVersion", "kind", "metadata", "name", "spec", "region", "nodeGroups", "size", "max",
                        "addons", "rookCeph", "mirrors", "packages", "tags", "labels", "network", "vpc", "cidr",
                        "controlPlane", "count", "bogus"]) | st.text(max_size=10)
DOCS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=25)
TAGS = st.sampled_from(["", "!!float ", "!!int ", "!!str ", "!!binary ", "!!timestamp ", "!!set ", "!!omap "])


def _document(doc: Any, base: bool) -> str:
    if base and isinstance(doc, dict):
        doc = merge(BASE, {"spec": doc})
    return yaml.safe_dump(doc, allow_unicode=True)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, base=st.booleans(), tag=TAGS, garble=st.text(max_size=8), cut=st.integers(0, 400))
def test_fuzzed_documents_fail_cleanly(doc: Any, base: bool, tag: str, garble: str, cut: int,
                                       tmp_path_factory: Any) -> None:
    text = _document(doc, base)
    if tag or garble:  # a tag on one value, or some bytes inserted somewhere
        at = min(cut, len(text))
        text = text[:at] + tag + garble + text[at:]
    path = Path(tmp_path_factory.mktemp("fuzz")) / "cluster.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with mock.patch("kubeaws.cli.main.connect", _connect):
        result = CliRunner().invoke(app, ["plan", "-f", str(path)])
    output = result.output
    assert "Traceback" not in output and not isinstance(result.exception, AssertionError)
    assert result.exit_code in (1, 2), output
    if result.exit_code == 1:
        assert "this test makes no AWS call" in output
        return
    with pytest.raises(SpecError) as info:
        load_spec_text(text, str(path))
    for problem in info.value.problems:
        assert len(problem.render(str(path))) < PROBLEM_LIMIT
        inside = problem.path or problem.message.startswith(("YAML", "the YAML", "a YAML"))
        if inside and "is empty" not in problem.message:
            assert problem.line is not None, problem
    assert len(output) < PROBLEM_LIMIT * (MAX_PROBLEMS + 2)
    assert re.search(r"problem", output)
