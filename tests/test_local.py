"""The local AWS emulator: start, reuse, status and stop of a real moto server, with KUBEAWS_HOME in a
temporary directory and a free port; and the `kubeaws local ...` commands."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeaws.cli.main import app
from kubeaws.errors import EmulatorError
from kubeaws.local import emulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KUBEAWS_HOME", str(tmp_path))
    monkeypatch.setenv("KUBEAWS_LOCAL_PORT", str(_free_port()))
    yield tmp_path
    emulator.stop()  # never leave a server behind, even when a test fails


def test_start_reuse_status_stop(home: Path) -> None:
    port = int(os.environ["KUBEAWS_LOCAL_PORT"])
    url = emulator.ensure_running()
    assert url == f"http://127.0.0.1:{port}"
    state = json.loads((home / "local.json").read_text())
    assert state["port"] == port and state["url"] == url

    assert emulator.ensure_running() == url
    assert json.loads((home / "local.json").read_text())["pid"] == state["pid"]  # reused, not restarted

    info = emulator.status()
    assert info["running"] is True and info["pid"] == state["pid"] and info["uptime"] >= 0

    assert emulator.stop() is True
    assert not (home / "local.json").exists()
    assert not emulator._alive(state["pid"])
    assert emulator.status()["running"] is False
    assert emulator.stop() is False


def test_busy_port_picks_another(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        url = emulator.ensure_running(port)
    assert url != f"http://127.0.0.1:{port}"
    assert emulator.status()["running"]


def test_stale_state_is_replaced(home: Path) -> None:
    (home / "local.json").write_text(json.dumps({"pid": 999_999_999, "port": 1, "url": "http://127.0.0.1:1"}))
    assert emulator.status()["running"] is False
    url = emulator.ensure_running()
    assert url != "http://127.0.0.1:1"


def test_missing_moto_says_how_to_install(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = emulator.importlib.util.find_spec
    monkeypatch.setattr(emulator.importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name))
    with pytest.raises(EmulatorError, match=r"kubeaws\[local\]"):
        emulator.ensure_running()


def test_local_environment_keeps_configured_credentials() -> None:
    env = emulator.local_environment("http://127.0.0.1:1", {})
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1" and env["AWS_ACCESS_KEY_ID"]
    configured = emulator.local_environment("http://127.0.0.1:1", {"AWS_PROFILE": "work"})
    assert configured == {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}


def test_local_commands(home: Path) -> None:
    runner = CliRunner()
    down = runner.invoke(app, ["local", "status"])
    assert down.exit_code == 0 and "not running" in down.stdout

    started = runner.invoke(app, ["local", "start"])
    assert started.exit_code == 0, started.stdout + started.stderr
    assert "http://127.0.0.1:" in started.stdout

    up = runner.invoke(app, ["local", "status"])
    assert up.exit_code == 0 and "running at http://127.0.0.1:" in up.stdout
    info = json.loads(runner.invoke(app, ["local", "status", "--output", "json", "--resources"]).stdout)
    assert info["running"] is True and isinstance(info["resources"], dict)

    stopped = runner.invoke(app, ["local", "stop"])
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    assert "not running" in runner.invoke(app, ["local", "stop"]).stdout


def test_cluster_command_with_kubeaws_local(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import EXAMPLES

    monkeypatch.setenv("KUBEAWS_LOCAL", "1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # restored after the test: the CLI sets it
    result = CliRunner().invoke(app, ["plan", "-f", str(EXAMPLES / "dev.yaml"), "--output", "json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["summary"]["create"] > 0
    url = emulator.status()["url"]
    assert url and os.environ["AWS_ENDPOINT_URL"] == url


def test_concurrent_starts_share_one_emulator(home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        urls = set(pool.map(lambda _: emulator.ensure_running(), range(4)))
    assert len(urls) == 1
