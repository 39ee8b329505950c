"""The child process of tests/test_tunnel.py's CLI tests:

    python -m tests.tunnel_child '<address map JSON>' tunnel -f SPEC ...

runs the kubeaws CLI (`tunnel` and `kubeconfig` registered as kubeaws.cli.main registers them) with
`kubeaws.tunnel.open_tunnel`'s `resolve` parameter (it exists for tests, see kubeaws.tunnel's docstring)
mapping the made-up addresses of the moto server (the bastion's public IP:22, the API endpoint's private
address:6443) to the test's sshd and TLS server on 127.0.0.1. The map is {"host:port": ["127.0.0.1", port]};
an address not in it fails the command: nothing leaves loopback.
"""

from __future__ import annotations

import functools
import json
import sys

import typer

from kubeaws import tunnel
from kubeaws.cli import access
from kubeaws.cli import tunnel as tunnel_cli


def cli_app() -> typer.Typer:
    """The commands under test, registered the way kubeaws.cli.main registers them."""
    app = typer.Typer(name="kubeaws", add_completion=False, pretty_exceptions_enable=False)
    access.register(app)
    tunnel_cli.register(app)
    return app


def main(argv: list[str]) -> None:
    mapping = {key: (str(host), int(port)) for key, (host, port) in json.loads(argv[0]).items()}

    def resolve(host: str, port: int) -> tuple[str, int]:
        if f"{host}:{port}" not in mapping:
            raise AssertionError(f"the test did not map {host}:{port}: nothing may leave loopback")
        return mapping[f"{host}:{port}"]

    tunnel.open_tunnel = functools.partial(tunnel.open_tunnel, resolve=resolve)  # type: ignore[assignment]
    cli_app()(argv[1:], prog_name="kubeaws")


if __name__ == "__main__":
    main(sys.argv[1:])
