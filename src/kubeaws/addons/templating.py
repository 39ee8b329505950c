"""The Jinja environments of kubeaws's renderers (addon manifests, user data, nodeadm configs): strict
(an undefined variable is an error), no autoescape, trailing newlines kept, and templates compiled once per
machine rather than once per command — their bytecode is kept in `kubeaws.cache.cache_dir("jinja")`, keyed
by Jinja on the template's name and source checksum, so an edited template is compiled afresh.

Called by kubeaws.addons and kubeaws.bootstrap (userdata, eks). Rendering stays pure: the cache changes
only how fast a template is ready, never what it renders.
"""

from __future__ import annotations

import contextlib
import json
import re
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


#: A UTF-16 surrogate pair as JSON writes a character beyond the Basic Multilingual Plane.
_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _pair(match: re.Match[str]) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


def tojson(value: Any) -> str:
    """`value` as JSON that is also a YAML scalar, for the manifests' `{{ x | tojson }}`: ASCII only, and a
    character beyond the Basic Multilingual Plane written as YAML's `\\UXXXXXXXX` (JSON's surrogate pair
    `\\ud800\\udc00` is not valid YAML)."""
    return _PAIR.sub(_pair, json.dumps(value, sort_keys=True))


def environment(package: str, folder: str, **options: Any) -> jinja2.Environment:
    """A strict environment over the templates in `package`/`folder` (extra Jinja `options` allowed); its
    `tojson` filter writes JSON that YAML reads as the same value (`tojson`)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader(package, folder), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False, bytecode_cache=bytecode_cache(),
                             **options)
    env.filters["tojson"] = _tojson_filter
    return env


@jinja2.pass_eval_context
def _tojson_filter(eval_ctx: Any, value: Any) -> str:
    """`tojson` as a filter with Jinja's own filter's signature (compiled templates, cached as bytecode, call
    the filter the way its decorator said when they were compiled)."""
    return tojson(value)
