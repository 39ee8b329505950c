"""The bootstrap sandbox's command server: one long-lived process per world that runs every call of the world's
commands (tests/sandbox/standins.py) as a fork of itself, with the sandbox modules and the AWS CLI already
imported, instead of starting a Python interpreter (and importing them) for every call.

A call: the command's launcher in the world's bin/ (tests/sandbox/launcher.c, compiled by `build_launcher`; the
same launcher in Python, `PY_LAUNCHER`, where no C compiler is found) connects to the server's abstract Unix
socket ($SANDBOX_STANDINS) and sends "C", the body's length (4 bytes, big-endian) and the body: its umask
(octal), which of its fds 0-2 are open (a bit mask), argc, argv and its environment, each NUL-terminated;
its open standard streams and its working directory go along as file descriptors (SCM_RIGHTS). The server
forks; the child takes them over (dup2, fchdir, umask, os.environ, new sys.stdin/stdout/stderr on the fds)
in a process group of its own, runs `standins.main` and ends as a fresh interpreter would (SystemExit's code,
a traceback and 1 for an exception, non-daemon threads joined, atexit handlers run, streams flushed). The
server sends the child's status back (4 bytes: 0-255 an exit code, 256 + N death by signal N), and the
launcher exits with it or dies of the same signal. A launcher that dies (its host terminated, a timeout)
takes its call along: the server kills the call's process group. "K" with an instance id kills every call
of that host and answers once they are gone (World.terminate: an instance's processes die with it).

What a fresh interpreter would do differently is checked, not assumed: a call runs in the fork only if its
interpreter-level environment (PYTHON*, LANG, LANGUAGE, LC_*, TZ, and what the AWS CLI reads on import:
AWS_DATA_PATH, BOTO_DISABLE_CRT) is the server's own; any other call starts a new interpreter as before.
The AWS CLI (`aws`, the real one) runs its own script in the fork (runpy), with the AWS_DATA_PATH that its
import set, if the call's HOME is the server's: awscli and botocore fix paths under ~ when imported (e.g.
botocore.loaders' ~/.aws/models, awscli's alias file). Otherwise it is executed, as are mkfs.ext4, blkid and
curl. A world runs one server per host for that reason (each host has its own HOME). One difference
remains: the forks share the server's string-hash seed, where fresh interpreters drew one each.

Started and stopped by tests/sandbox/world.py and tests/etcd_cluster.py (`CommandServer`); run as
`python -m tests.sandbox.cmdserver ADDRESS`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import io
import os
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_C = Path(__file__).with_name("launcher.c")
#: The same launcher in Python, for machines without a C compiler (`-IS`: only the standard library).
PY_LAUNCHER = f'''#!{sys.executable} -IS
import os, socket, struct, sys
def main():
    address = os.environ.get("SANDBOX_STANDINS")
    if not address:
        print("sandbox launcher: $SANDBOX_STANDINS (the command server) is not set", file=sys.stderr)
        return 127
    mask = os.umask(0)
    os.umask(mask)
    fds, open_mask = [], 0
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
        open_mask |= 1 << fd
    fds.append(os.open(".", os.O_PATH | os.O_DIRECTORY))
    words = [b"%o" % mask, b"%d" % open_mask, b"%d" % len(sys.argv), *map(os.fsencode, sys.argv),
             *(k + b"=" + v for k, v in os.environb.items())]
    body = b"".join(w + b"\\0" for w in words)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\\0" + address)
    socket.send_fds(sock, [b"C" + struct.pack(">I", len(body))], fds)
    sock.sendall(body)
    reply = b""
    while len(reply) < 4:
        chunk = sock.recv(4 - len(reply))
        if not chunk:
            print("sandbox launcher: the command server: connection reset", file=sys.stderr)
            return 127
        reply += chunk
    (status,) = struct.unpack(">I", reply)
    if status >= 256:
        import signal
        if status - 256 not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(status - 256, signal.SIG_DFL)
        os.kill(os.getpid(), status - 256)
        return 128 + status - 256
    return status
sys.exit(main())
'''
#: A call that cannot run in the fork: a new interpreter, as before the server.
FRESH = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from tests.sandbox.standins import main; "
         "sys.exit(main(sys.argv[1:]))")
#: Variables the interpreter or the AWS CLI read when they start or import (see the module docstring).
IMPORT_VARIABLES = ("LANG", "LANGUAGE", "TZ", "AWS_DATA_PATH", "BOTO_DISABLE_CRT")

_compiled: Path | None = None


def interpreter_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in IMPORT_VARIABLES or k.startswith(("PYTHON", "LC_"))}


def build_launcher() -> Path | None:
    """The C launcher, compiled once per process (None without a C compiler)."""
    global _compiled
    if _compiled is None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            return None
        digest = hashlib.sha256(LAUNCHER_C.read_bytes()).hexdigest()[:16]
        out = Path(tempfile.mkdtemp(prefix="kubeaws-launcher-")) / f"launcher-{digest}"
        subprocess.run([cc, "-O2", "-Wall", "-Werror", "-o", str(out), str(LAUNCHER_C)], check=True,
                       capture_output=True)
        _compiled = out
    return _compiled


def install_launchers(bin_dir: Path, names: tuple[str, ...]) -> None:
    launcher = build_launcher()
    for name in names:
        path = bin_dir / name
        if launcher is not None:
            shutil.copyfile(launcher, path)
        else:
            path.write_text(PY_LAUNCHER)
        path.chmod(0o755)


# -- the world's side ----------------------------------------------------------------------------------------
class CommandServer:
    """The server process of one world; `env` is the environment the world's calls will have (its
    interpreter-level part becomes the server's, so that those calls run in forks)."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.address = f"kubeaws-sandbox-{os.getpid()}-{secrets.token_hex(6)}"
        server_env = {"PATH": env.get("PATH", os.defpath), **interpreter_env(env)}
        if "HOME" in env:
            server_env["HOME"] = env["HOME"]
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.sandbox.cmdserver", self.address],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=server_env,
                                         cwd=REPO, start_new_session=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready != b"ready\n":
            self.close()
            raise RuntimeError(f"the sandbox command server did not start: {log.read_text()[-2000:]}")

    def kill_host(self, iid: str) -> None:
        """Kill every running call of the host `iid`; returns once they are gone."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect("\0" + self.address)
            body = iid.encode()
            sock.sendall(b"K" + struct.pack(">I", len(body)) + body)
            _recv_exact(sock, 4)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the server kills the calls still running and ends
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the sandbox command server closed the connection")
        data += chunk
    return data


# -- the server ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Call:
    conn: socket.socket
    host: str
    abandoned: bool = False


class Server:
    def __init__(self, address: str) -> None:
        self.own_env = interpreter_env(dict(os.environ))
        self.home = os.environ.get("HOME")
        _preload()
        self.aws_data_path = os.environ.get("AWS_DATA_PATH", "")  # as importing awscli set it
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + address)
        self.listener.listen(128)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "reap")
        self.selector.register(0, selectors.EVENT_READ, "stdin")
        self.calls: dict[int, Call] = {}

    def serve(self) -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    self.accept()
                elif key.data == "reap":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self.reap()
                elif key.data == "stdin":
                    if not os.read(0, 4096):
                        self.shutdown()
                        return
                else:
                    self.launcher_gone(key.data)

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(30)
            head, fds, _, _ = socket.recv_fds(conn, 5, 8)
            head += _recv_exact(conn, 5 - len(head)) if len(head) < 5 else b""
            (size,) = struct.unpack(">I", head[1:5])
            body = _recv_exact(conn, size)
            if head[:1] == b"K":
                self.kill_host(body.decode())
                conn.sendall(b"\0\0\0\0")
                conn.close()
                return
            self.start(conn, fds, body)
        except (OSError, ValueError, struct.error) as exc:
            print(f"cmdserver: bad request: {exc!r}", file=sys.stderr, flush=True)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def start(self, conn: socket.socket, fds: list[int], body: bytes) -> None:
        words = body.split(b"\0")[:-1]
        umask, open_mask, argc = int(words[0], 8), int(words[1]), int(words[2])
        argv = [os.fsdecode(w) for w in words[3:3 + argc]]
        env = dict(os.fsdecode(w).split("=", 1) for w in words[3 + argc:] if b"=" in w)
        if len(fds) != bin(open_mask).count("1") + 1:
            raise ValueError(f"{len(fds)} file descriptors for the open mask {open_mask}")
        pid = os.fork()
        if pid == 0:
            self.child(conn, fds, open_mask, umask, argv, env)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        self.calls[pid] = Call(conn, env.get("SANDBOX_HOST", ""))
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def reap(self) -> None:
        while self.calls:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.finished(pid, status)

    def finished(self, pid: int, status: int) -> None:
        call = self.calls.pop(pid, None)
        if call is None:
            return
        code = os.waitstatus_to_exitcode(status)
        if not call.abandoned:
            self.selector.unregister(call.conn)
            with contextlib.suppress(OSError):
                call.conn.setblocking(True)
                call.conn.sendall(struct.pack(">I", code if code >= 0 else 256 - code))
        call.conn.close()

    def launcher_gone(self, pid: int) -> None:
        """The launcher closed its connection (it died): its call dies too."""
        call = self.calls[pid]
        call.abandoned = True
        self.selector.unregister(call.conn)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)

    def kill_host(self, iid: str) -> None:
        for pid in [pid for pid, call in self.calls.items() if call.host == iid]:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            self.finished(pid, status)

    def shutdown(self) -> None:
        for pid in list(self.calls):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    # -- in the forked child ------------------------------------------------------------------------------
    def child(self, conn: socket.socket, fds: list[int], open_mask: int, umask: int, argv: list[str],
              env: dict[str, str]) -> NoReturn:
        code = 1
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.selector.close()
            for sock in (self.listener, conn, *(c.conn for c in self.calls.values())):
                sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            received = iter(fds)
            for fd in (0, 1, 2):
                if open_mask & (1 << fd):
                    os.dup2(next(received), fd)
                else:
                    os.close(fd)
            os.fchdir(next(received))
            for fd in fds:
                os.close(fd)
            os.umask(umask)
            os.environ.clear()
            os.environ.update(env)
            if interpreter_env(env) != self.own_env:
                os.execv(sys.executable, [sys.executable, "-c", FRESH, *argv])
            _standard_streams(open_mask)
            sys.argv = list(argv)
            from tests.sandbox import standins

            code = _exit_code(standins.main(argv, run_real=self.run_real))
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:  # what the interpreter does with an uncaught exception
            with contextlib.suppress(BaseException):
                sys.excepthook(*sys.exc_info())
            code = 1
        _finish(code)

    def run_real(self, name: str, args: list[str]) -> int:
        """The real AWS CLI's script in this process (its modules are imported); other tools executed."""
        from tests.sandbox.standins import REAL

        if name != "aws" or os.environ.get("HOME") != self.home:
            os.execv(REAL[name], [str(REAL[name]), *args])
        os.environ["AWS_DATA_PATH"] = self.aws_data_path
        sys.argv = [str(REAL["aws"]), *args]
        import runpy

        runpy.run_path(str(REAL["aws"]), run_name="__main__")
        return 0


def _preload() -> None:
    """What the calls import: the stand-ins and the AWS CLI (which aliases `botocore` to its own copy: the
    stand-ins import no botocore)."""
    from tests.sandbox import kubeadm_effects, kubectl, standins  # noqa: F401

    assert "botocore" not in sys.modules, "the stand-ins must not import botocore before the AWS CLI does"
    import awscli.clidriver  # type: ignore[import-untyped]
    import awscli.handlers  # type: ignore[import-untyped]  # noqa: F401 (every CLI driver imports it: its plugins)


def _standard_streams(open_mask: int) -> None:
    """sys.stdin/stdout/stderr on the call's fds, made as the interpreter makes them at start."""
    old = {0: sys.__stdin__, 1: sys.__stdout__, 2: sys.__stderr__}
    new: dict[int, Any] = {}
    for fd in (0, 1, 2):
        if not open_mask & (1 << fd):
            new[fd] = None
            continue
        like = old[fd]
        encoding = like.encoding if like else "utf-8"
        errors = like.errors if like else ("backslashreplace" if fd == 2 else "strict")
        raw = open(fd, "rb" if fd == 0 else "wb", -1, closefd=False)  # noqa: SIM115 (sys.stdin/out/err)
        new[fd] = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="\n",
                                   line_buffering=fd == 2 or os.isatty(fd))
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        setattr(sys, name, new[fd])
        setattr(sys, f"__{name}__", new[fd])


def _exit_code(value: object) -> int:
    """The exit status of `sys.exit(value)`."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    with contextlib.suppress(Exception):
        print(value, file=sys.stderr)
    return 1


def _finish(code: int) -> NoReturn:
    """The interpreter's end: non-daemon threads joined, atexit handlers, streams flushed."""
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except BaseException:
                code = 120 if stream is sys.stdout else code
    os._exit(code & 0xFF)


if __name__ == "__main__":
    Server(sys.argv[1]).serve()
