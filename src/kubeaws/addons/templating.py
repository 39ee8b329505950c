"""The Jinja environments of kubeaws's renderers (addon manifests, user data, nodeadm configs): strict
(an undefined variable is an error), no autoescape, trailing newlines kept, and templates compiled once per
machine rather than once per command — their bytecode is kept in `kubeaws.cache.cache_dir("jinja")`, keyed
by Jinja on the template's name and source checksum, so an edited template is compiled afresh.

Called by kubeaws.addons and kubeaws.bootstrap (userdata, eks). Rendering stays pure: the cache changes
only how fast a template is ready, never what it renders.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jinja2
from jinja2.bccache import Bucket

from kubeaws.cache import cache_dir, ensure


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, minus its one failure mode: a cache that cannot be written is skipped."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def bytecode_cache() -> jinja2.BytecodeCache | None:
    """The shared bytecode cache, or None when caching is off or the directory cannot be made."""
    directory = cache_dir("jinja")
    if directory is None or not ensure(directory):
        return None
    return _BytecodeCache(str(directory))


def environment(package: str, folder: str, **options: Any) -> jinja2.Environment:
    """A strict environment over the templates in `package`/`folder` (extra Jinja `options` allowed)."""
    return jinja2.Environment(loader=jinja2.PackageLoader(package, folder), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False, bytecode_cache=bytecode_cache(),
                              **options)
