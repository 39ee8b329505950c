"""The sandbox's command server (tests/sandbox/cmdserver.py) keeps what a command started by a shell has: its
exit code, output streams, stdin, working directory, umask and environment, death by signal, death with its
launcher; the AWS CLI run in the server's fork answers as the real `aws` executed; both launchers (C and
Python) speak the same protocol."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import cmdserver, standins
from tests.sandbox.cmdserver import CommandServer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets, O_PATH")
AWS = Path(sys.executable).parent / "aws"


@pytest.fixture(params=["c", "python"])
def world(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    if request.param == "python":
        monkeypatch.setattr(cmdserver, "build_launcher", lambda: None)
    elif cmdserver.build_launcher() is None:
        pytest.skip("no C compiler")
    bin_dir = standins.install(tmp_path)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", "SANDBOX_WORLD": str(tmp_path),
            "HOME": str(tmp_path / "home"), "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    server = CommandServer(tmp_path / "cmdserver.log", base)
    try:
        yield {"dir": tmp_path, "server": server,
               "env": {**base, "SANDBOX_HOST": "i-1", "SANDBOX_STANDINS": server.address}}
    finally:
        server.close()


def run(world: dict[str, Any], *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**world["env"], **kwargs.pop("env", {})}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_exit_codes_streams_and_the_calls_log(world: dict[str, Any]) -> None:
    assert run(world, "apt-cache", "show", "awscli").stdout == "Package: awscli\n"
    failed = run(world, "modprobe", "nosuch")
    assert (failed.returncode, failed.stdout, failed.stderr) == (1, "", "modprobe: FATAL: Module nosuch not found\n")
    assert run(world, "kubectl", "version").returncode == 127  # not installed on this host
    assert run(world, "curl", "-sS", "file:///dev/stdin", input="from stdin\n").stdout == "from stdin\n"
    log = (world["dir"] / "calls.log").read_text().splitlines()
    assert log[0] == "i-1 apt-cache show awscli" and log[-1] == "i-1 curl -sS file:///dev/stdin"


def test_working_directory_umask_and_environment(world: dict[str, Any]) -> None:
    work = world["dir"] / "work"
    work.mkdir()
    script = "umask 077 && gpg --dearmor -o key.gpg"
    assert subprocess.run(["bash", "-c", script], cwd=work, env=world["env"], timeout=60).returncode == 0
    assert (work / "key.gpg").stat().st_mode & 0o777 == 0o600
    # the environment: the host comes from $SANDBOX_HOST of the call, not of the server
    run(world, "apt-cache", "policy", env={"SANDBOX_HOST": "i-2"})
    assert (world["dir"] / "calls.log").read_text().splitlines()[-1] == "i-2 apt-cache policy"
    # closed standard streams stay closed (a shell's `exec 1>&- 2>&-`)
    closed = subprocess.run(["bash", "-c", "modprobe nosuch 1>&- 2>&-; echo $?"], env=world["env"],
                            capture_output=True, text=True, timeout=60)
    assert closed.stdout == "1\n"


def test_the_aws_cli_in_the_fork_answers_as_the_real_one(world: dict[str, Any]) -> None:
    for args in (["--version"], ["nosuch-service"], ["s3", "ls", "--no-such-flag"]):
        forked = run(world, "aws", *args)
        real = run(world, str(AWS), *args)
        assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)
    assert run(world, "aws", "--version").stdout.startswith("aws-cli/")
    # another HOME: awscli's import-time paths under ~ would differ, so the real aws is executed
    other = run(world, "aws", "--version", env={"HOME": str(world["dir"] / "other")})
    assert other.returncode == 0 and other.stdout == run(world, str(AWS), "--version").stdout
    # another interpreter environment: a new interpreter runs the stand-in
    assert run(world, "apt-cache", "show", "awscli", env={"LC_ALL": "C"}).stdout == "Package: awscli\n"


def _hanging_call(world: dict[str, Any], host: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A call that hangs (the real curl, waiting for an answer from a loopback server that never answers) and
    its connection to that server: EOF there once the call is dead."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        proc = subprocess.Popen(["curl", "-sS", f"http://127.0.0.1:{listener.getsockname()[1]}/"],
                                env={**world["env"], "SANDBOX_HOST": host})
        conn, _ = listener.accept()
    conn.settimeout(30)
    return proc, conn


def _gone(conn: socket.socket) -> bool:
    """The call's end: its request read, then EOF (a socket timeout while it lives)."""
    while conn.recv(4096):
        pass
    return True


def test_killing_a_host_kills_its_calls_and_their_launchers_die_of_it(world: dict[str, Any]) -> None:
    proc, conn = _hanging_call(world, "i-7")
    other, other_conn = _hanging_call(world, "i-9")
    world["server"].kill_host("i-7")
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert _gone(conn)
    assert other.poll() is None  # another host's call runs on
    other.kill()
    assert _gone(other_conn)


def test_a_launcher_that_dies_takes_its_call_along(world: dict[str, Any]) -> None:
    proc, conn = _hanging_call(world, "i-8")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert _gone(conn)
