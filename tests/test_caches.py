"""kubeaws's caches (kubeaws.cache): botocore's parsed service models (kubeaws.aws.model_cache) — what is
stored, that a cached model is the model (documentation aside), that a changed source invalidates it, that
any problem with the cache falls back to botocore's own loading — and compiled Jinja templates
(kubeaws.addons.templating)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import botocore.session
import jinja2
import pytest
from botocore.loaders import JSONFileLoader

from kubeaws.aws import model_cache
from kubeaws.aws.model_cache import CachingFileLoader, CachingLoader, strip_documentation
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.cache import cache_dir


def _session(monkeypatch: pytest.MonkeyPatch, root: Path) -> Any:
    """A botocore session whose models are cached under `root` (KUBEAWS_CACHE_DIR)."""
    monkeypatch.setenv("KUBEAWS_CACHE_DIR", str(root))
    session = botocore.session.Session()
    model_cache.install(session)
    return session


def _count_source_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = JSONFileLoader._load_file

    def counting(self: Any, full_path: str, open_method: Any) -> Any:
        reads.append(full_path)
        return original(self, full_path, open_method)

    monkeypatch.setattr(JSONFileLoader, "_load_file", counting)
    return reads


def test_a_second_session_reads_the_parsed_copy_not_botocore_data(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_source_reads(monkeypatch)
    first = _session(monkeypatch, tmp_path).get_service_model("ec2")
    assert any("ec2" in r and "service-2" in r for r in reads)
    entries = sorted(p.name for p in (tmp_path / "botocore").iterdir())
    assert any(n.startswith("service-2-") for n in entries) and any(n.startswith("services-") for n in entries)
    reads.clear()
    second = _session(monkeypatch, tmp_path).get_service_model("ec2")
    assert reads == [], "the second session should not read botocore's data files"
    assert first.operation_names == second.operation_names
    op = second.operation_model("DescribeInstances")
    assert op.input_shape.members.keys() == first.operation_model("DescribeInstances").input_shape.members.keys()
    assert second.service_id == "EC2" and second.api_version == first.api_version


def test_cached_models_lose_documentation_text_but_keep_every_key() -> None:
    model = {"documentation": "<p>long</p>", "shapes": {"S": {"type": "structure", "documentation": "x",
                                                              "members": {"documentation": {"shape": "T"}}}},
             "clientContextParams": {"P": {"type": "string", "documentation": "needed by botocore"}}}
    stripped = strip_documentation(model)
    assert stripped["documentation"] == "" and stripped["shapes"]["S"]["documentation"] == ""
    assert stripped["shapes"]["S"]["members"] == {"documentation": {"shape": "T"}}  # a member, not text
    assert stripped["clientContextParams"]["P"] == {"type": "string", "documentation": ""}


def test_a_changed_source_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data" / "thing"
    data.parent.mkdir()
    (data.parent / "thing.json").write_text(json.dumps({"v": 1}))
    loader = CachingFileLoader(tmp_path / "cache")
    assert loader.load_file(str(data)) == {"v": 1}
    assert loader.load_file(str(data)) == {"v": 1}
    (data.parent / "thing.json").write_text(json.dumps({"v": 22}))  # size (and mtime) change
    assert loader.load_file(str(data)) == {"v": 22}
    assert loader.load_file(str(tmp_path / "data" / "missing")) is None


def test_a_corrupt_entry_falls_back_and_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "thing.json").write_text(json.dumps({"v": 1}))
    loader = CachingFileLoader(tmp_path / "cache")
    loader.load_file(str(tmp_path / "thing"))
    [entry] = list((tmp_path / "cache").iterdir())
    entry.write_text("{not json")
    assert loader.load_file(str(tmp_path / "thing")) == {"v": 1}
    assert json.loads(entry.read_text()) == {"v": 1}


def test_an_unwritable_cache_directory_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    model = _session(monkeypatch, blocker / "cache").get_service_model("sts")
    assert "GetCallerIdentity" in model.operation_names


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEAWS_CACHE_DIR", "off")
    assert cache_dir("botocore") is None
    session = botocore.session.Session()
    model_cache.install(session)
    assert not isinstance(session.get_component("data_loader"), CachingLoader)
    monkeypatch.delenv("KUBEAWS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("botocore") == tmp_path / "kubeaws" / "botocore"


def test_aws_data_path_is_still_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model under AWS_DATA_PATH (botocore's extension point) wins over the bundled one, as without the
    cache: here a copy of STS with an extra operation."""
    session = botocore.session.Session()
    original = session.get_component("data_loader").load_service_model("sts", "service-2")
    version = original["metadata"]["apiVersion"]
    custom = json.loads(json.dumps(original))
    custom["operations"]["KubeawsProbe"] = dict(custom["operations"]["GetCallerIdentity"], name="KubeawsProbe")
    target = tmp_path / "models" / "sts" / version
    target.mkdir(parents=True)
    (target / "service-2.json").write_text(json.dumps(custom))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "models"))
    model = _session(monkeypatch, tmp_path / "cache").get_service_model("sts")
    assert "KubeawsProbe" in model.operation_names


def test_clients_built_through_the_cache_call_aws(endpoint: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEAWS_CACHE_DIR", str(tmp_path))
    for _ in range(2):  # cold, then from the cache
        ctx = AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), "cache")
        assert ctx.call("ec2", "describe_regions")["Regions"]
        assert ctx.account_id()
    assert os.listdir(tmp_path)


def test_templates_compile_once_and_render_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeaws.addons.templating import environment

    monkeypatch.setenv("KUBEAWS_CACHE_DIR", str(tmp_path))
    first = environment("kubeaws.addons", "templates").get_template("flannel.yaml.j2")
    assert list((tmp_path / "jinja").iterdir()), "compiled bytecode should be kept"
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def counting(self: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(args[0] if args else kwargs.get("name")))
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    second = environment("kubeaws.addons", "templates").get_template("flannel.yaml.j2")
    assert compiled == [], "the second environment should load the bytecode, not compile"
    context = {"pod_cidr": "192.168.0.0/16", "images": {"flannel": "f:1", "flannel-cni-plugin": "p:1"}}
    assert second.render(context) == first.render(context)
    assert "192.168.0.0/16" in second.render(context)


def test_templates_render_without_a_writable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeaws.addons.templating import environment

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("KUBEAWS_CACHE_DIR", str(blocker))
    assert environment("kubeaws.addons", "templates").bytecode_cache is None
    monkeypatch.setenv("KUBEAWS_CACHE_DIR", "off")
    assert environment("kubeaws.addons", "templates").bytecode_cache is None
