"""The local AWS emulator behind `--local`: moto in server mode on 127.0.0.1 behind kubeaws' EKS front
(kubeaws.local.moto_server, kubeaws.local.eks_front), started once in the background and reused by every later
command until `kubeaws local stop`. One emulator per `$KUBEAWS_HOME`: a script that must not touch the user's
(examples/demo.sh) gives itself its own home and port 0 (any free port).

State lives in `$KUBEAWS_HOME/local.json` (default `~/.kubeaws`): pid, port, url, started_at. The server's
output goes to `$KUBEAWS_HOME/local.log`. Only the standard library is imported here, so `kubeaws local ...`
and the CLI's `--local` path stay fast.

Called by the CLI (`kubeaws local start|stop|status`, and every cluster command with `--local`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from kubeaws.errors import EmulatorError

DEFAULT_PORT = 4599
START_TIMEOUT = 30.0
INSTALL_HINT = "pip install 'kubeaws[local]'"

#: moto settings: validate AMIs, instance types and key pairs like AWS does; load the AWS managed IAM policies.
MOTO_ENV = {
    "MOTO_ENABLE_AMI_VALIDATION": "1",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "1",
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}

#: Fake credentials for the emulator (moto accepts any).
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kubeaws-local", "AWS_SECRET_ACCESS_KEY": "kubeaws-local"}

# Servers started by this process, so that `stop` can reap them (no zombie left behind in long-lived callers).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def home() -> Path:
    """kubeaws's own directory: $KUBEAWS_HOME, default ~/.kubeaws."""
    return Path(os.environ.get("KUBEAWS_HOME") or Path.home() / ".kubeaws")


def state_file() -> Path:
    return home() / "local.json"


def log_file() -> Path:
    return home() / "local.log"


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _write_state(data: dict[str, Any]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _clear_state() -> None:
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a reaped or zombie process counts as dead)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a zombie still answers kill(0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_moto(pid: int) -> bool:
    """Guard against pid reuse: on Linux, check that the process really is a moto server."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): rely on the URL check done by the callers
    return b"moto" in cmdline


def _answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=timeout) as resp:
            return 200 <= int(resp.status) < 500
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default_port() -> int:
    raw = os.environ.get("KUBEAWS_LOCAL_PORT")
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise EmulatorError(f"KUBEAWS_LOCAL_PORT={raw!r} is not a port number") from None
    if not 0 <= port < 65536:
        raise EmulatorError(f"KUBEAWS_LOCAL_PORT={raw!r} is not a port number (1-65535, or 0 for any free one)")
    return port


def log_tail(lines: int = 20) -> str:
    try:
        text = log_file().read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _check_installed() -> None:
    missing = [m for m in ("moto", "flask", "flask_cors") if importlib.util.find_spec(m) is None]
    if missing:
        raise EmulatorError(f"the local AWS emulator needs moto[server] ({', '.join(missing)} not installed); "
                            f"fix: {INSTALL_HINT}")


def running() -> dict[str, Any] | None:
    """The recorded emulator if it is alive and answers, else None."""
    state = _read_state()
    if state is None:
        return None
    pid = int(state["pid"])
    url = str(state.get("url", ""))
    if _alive(pid) and _is_moto(pid) and url and _answers(url):
        return state
    return None


def ensure_running(port: int | None = None) -> str:
    """The URL of a running emulator: the recorded one if it answers, else a new one (on `port`, default
    $KUBEAWS_LOCAL_PORT or 4599, or a free port when that one is taken or is 0). Raises EmulatorError."""
    state = running()
    if state is not None:
        return str(state["url"])
    with _lock():  # concurrent commands start one emulator, not several
        return _start(port)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / "local.lock", "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock, last writer wins
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def launch(port: int | None = None,
           log: IO[bytes] | int = subprocess.DEVNULL) -> tuple[subprocess.Popen[bytes], str]:
    """Start a moto server on 127.0.0.1 (a free port when `port` is None) with AMI, instance-type and
    key-pair validation, the AWS managed IAM policies and kubeaws' fixes of moto bugs
    (kubeaws.local.moto_server), and wait until it answers. Returns the process and
    its URL; the caller owns the process (nothing is recorded). Used by `ensure_running` and by the tests
    and benchmark, which need private servers."""
    _check_installed()
    chosen = port if port is not None else _free_port()
    url = f"http://127.0.0.1:{chosen}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeaws.local.moto_server", "-H", "127.0.0.1", "-p", str(chosen)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **MOTO_ENV},
        start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(url, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = "exited" if proc.poll() is not None else f"did not answer within {START_TIMEOUT:.0f}s"
            proc.kill()
            proc.wait(timeout=10)
            raise EmulatorError(f"the local AWS emulator (moto) {why} on {url}")
        time.sleep(0.1)
    return proc, url


def _start(port: int | None) -> str:
    state = _read_state()
    if state is not None and _alive(int(state["pid"])) and _is_moto(int(state["pid"])):
        # Recorded and alive: another command may have just started it; give it a moment, else replace it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _answers(str(state.get("url", "")), timeout=0.5):
                return str(state["url"])
            time.sleep(0.1)
        _terminate(int(state["pid"]))
    _clear_state()
    wanted = port if port is not None else _default_port()
    chosen = wanted if wanted and _port_free(wanted) else _free_port()  # 0: any free port
    home().mkdir(parents=True, exist_ok=True)
    with open(log_file(), "ab") as log:
        try:
            proc, url = launch(chosen, log)
        except EmulatorError as exc:
            raise EmulatorError(f"{exc}; log {log_file()}:\n{log_tail()}") from None
    _CHILDREN[proc.pid] = proc
    _write_state({"pid": proc.pid, "port": chosen, "url": url, "started_at": time.time(),
                  "log": str(log_file())})
    return url


def _terminate(pid: int, timeout: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = _CHILDREN.get(pid)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)
            if not _alive(pid):
                _CHILDREN.pop(pid, None)
                return
            time.sleep(0.05)
    _CHILDREN.pop(pid, None)


def stop() -> bool:
    """Stop the recorded emulator. True when one was running (all its state is lost)."""
    state = _read_state()
    if state is None:
        return False
    pid = int(state["pid"])
    was_running = _alive(pid) and _is_moto(pid)
    if was_running:
        _terminate(pid)
    _clear_state()
    return was_running


_CATALOGUE_MODELS = frozenset({"Ami", "Snapshot", "EC2Backend", "ManagedPrefixList", "FakeGrantee"})


def _resource_counts(url: str) -> dict[str, int]:
    """Resources moto holds, per service/model, from its state dump (skipped when slow or unavailable).

    Costs about a second (moto serialises its whole state). Only models with at least one entry; moto's
    built-in catalogues (AWS managed IAM policies, public AMIs and their snapshots) are left out."""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=3) as resp:
            data = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return {}
    counts: Counter[str] = Counter()
    if not isinstance(data, dict):
        return {}
    for service, models in data.items():
        if not isinstance(models, dict) or service == "iam":
            continue
        for model, items in models.items():
            if isinstance(items, list) and items and model not in _CATALOGUE_MODELS:
                counts[f"{service}.{model}"] += len(items)
    return dict(sorted(counts.items()))


def status(resources: bool = False) -> dict[str, Any]:
    """running, url, pid, port, startedAt, uptime (s), log; with `resources`, what moto holds (slow: ~1 s)."""
    state = _read_state()
    live = running()
    out: dict[str, Any] = {"running": live is not None, "url": None, "pid": None, "port": None,
                           "startedAt": None, "uptime": None, "log": str(log_file()), "stateFile": str(state_file())}
    if live is not None:
        started = float(live.get("started_at", time.time()))
        out.update(url=live["url"], pid=live["pid"], port=live.get("port"), startedAt=started,
                   uptime=round(time.time() - started, 1))
        if resources:
            out["resources"] = _resource_counts(str(live["url"]))
    elif state is not None:
        out["stale"] = True  # recorded but gone; the next ensure_running starts a new one
    return out


def credentials_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user explicitly chose credentials (environment keys or a profile)."""
    env = os.environ if environ is None else environ
    return bool(env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"))


def local_environment(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that point the AWS SDK at the emulator: AWS_ENDPOINT_URL always, fake
    credentials only when none are configured (real ones are harmless there: moto checks nothing)."""
    out = {"AWS_ENDPOINT_URL": url}
    if not credentials_configured(environ):
        out.update(FAKE_CREDENTIALS)
    return out
