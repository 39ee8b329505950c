"""Where kubeaws keeps what it can rebuild but would rather not on every run: botocore's parsed service
models (kubeaws.aws.model_cache) and compiled Jinja templates (kubeaws.addons.templating). A leaf module
(standard library only) so that any layer may use it.

`KUBEAWS_CACHE_DIR` sets the directory (default `$XDG_CACHE_HOME/kubeaws`, else `~/.cache/kubeaws`);
`KUBEAWS_CACHE_DIR=off` turns every cache off. Everything in it can be deleted at any time.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(part: str) -> Path | None:
    """The cache directory for `part` (e.g. "botocore"), or None when caching is off. Not created here."""
    configured = os.environ.get("KUBEAWS_CACHE_DIR", "")
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured) / part
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeaws" / part


def ensure(directory: Path) -> bool:
    """Create `directory` private to the user (0700); False when it cannot be created."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return False
    return directory.is_dir()
