"""What the local emulator's fronts (local.ec2_front, local.eks_front) share: calling moto's WSGI app with a
request and collecting its whole answer, to read or rewrite it before it goes back to the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A WSGI application (moto's server app, or the next front in the chain).
App = Callable[[dict[str, Any], Callable[..., Any]], Any]


def collect(app: App, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status code, headers, body) of `app`'s answer to `environ`; the app's iterable is closed after."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(str(captured.get("status", "500")).split()[0]), list(captured.get("headers", [])), b"".join(chunks)
