"""Shared fixtures: a moto server (a real HTTP endpoint, one per test worker) and an AwsContext on it.

moto runs in server mode, never in-process: kubeaws's executor calls AWS from several threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.local import emulator

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
REGION = "us-east-1"

@pytest.fixture(scope="session", autouse=True)
def _fake_credentials() -> None:
    """Never let a test reach a real AWS account."""
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
         "AWS_DEFAULT_REGION": REGION}
    )
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KUBEAWS_LOCAL"):
        os.environ.pop(var, None)


def launch_moto() -> tuple[subprocess.Popen[bytes], str]:
    """`emulator.launch` (the emulator `kubeaws --local` starts: AMI, instance-type and key-pair validation, the
    AWS managed policies, kubeaws' fixes of moto) running tests/moto_server.py, which leaves out two costs of
    moto's that only the tests pay: a reset that rebuilt every backend before dropping it, the managed policies
    of IAM partitions nobody uses."""
    port = emulator._free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "tests.moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, env={**os.environ, **emulator.MOTO_ENV},
                            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + emulator.START_TIMEOUT
    while not emulator._answers(url, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(f"the tests' moto server (tests/moto_server.py) did not start on {url}")
        time.sleep(0.1)
    return proc, url


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A private moto server on 127.0.0.1 with AMI, instance-type and key-pair validation on (`launch_moto`)."""
    proc, url = launch_moto()
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a loaded machine: the server's state is in memory only, nothing to keep
        proc.kill()
        proc.wait(timeout=10)


def reset_moto(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=120)  # a loaded 2-core machine may take a while to wipe moto


@pytest.fixture
def endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly reset moto server; AWS_ENDPOINT_URL points at it for code that reads the environment."""
    reset_moto(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def make_ctx(endpoint: str, cluster: str = "dev", region: str = REGION) -> AwsContext:
    return AwsContext(AwsSettings(region=region, endpoint_url=endpoint), cluster=cluster, policy=FAST_POLICY)


@pytest.fixture
def ctx(endpoint: str) -> AwsContext:
    """An AwsContext for cluster "dev" on the reset moto server, with fast retries."""
    return make_ctx(endpoint)


@pytest.fixture
def world_factory(tmp_path: Path, endpoint: str) -> Iterator[Any]:
    """The bootstrap sandbox's worlds (tests/sandbox/world.py): `make(**spec)` applies a cluster of the spec
    on the moto server and boots its hosts; every world made is closed after the test."""
    from tests.sandbox.world import World

    worlds: list[World] = []

    def make(**spec: Any) -> World:
        world = World(tmp_path / str(len(worlds)), endpoint, **spec)
        worlds.append(world)
        world.apply()
        return world

    yield make
    for world in worlds:
        world.close()


@pytest.fixture(scope="session")
def kube_pki() -> dict[str, str]:
    """A test CA with a server certificate for 127.0.0.1 (tests/kube_fake.py), for the fake API server."""
    from tests.kube_fake import test_pki

    return test_pki()


@pytest.fixture
def fake_api(kube_pki: dict[str, str]) -> Iterator[Any]:
    """A fresh fake Kubernetes API server (tests/kube_fake.py) on 127.0.0.1 with `kube_pki`'s certificate."""
    from tests.kube_fake import serve

    with serve(kube_pki["cert"], kube_pki["key"]) as server:
        yield server
