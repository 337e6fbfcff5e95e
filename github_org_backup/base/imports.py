"""Importing a library without the optional packages it would load only to offer them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Within the block, ``import name`` fails for each of ``names`` not loaded yet, as if it
    were not installed; after it, the package imports as usual.

    For a library that tries an optional package at its own import time, as structlog.dev
    tries rich (for console tracebacks): the run that never draws one does not load it.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


@contextlib.contextmanager
def tls_contexts_deferred() -> Iterator[None]:
    """Within the block, ``ssl.create_default_context()`` and loading the default CA paths
    cost nothing: the contexts made there trust no CA at all (verification still required,
    so they fail closed).

    aiohttp builds two default TLS contexts when it is imported, each loading the system's CA
    store (about 20 ms apiece); the run's own connector builds the one it uses at its first
    https connection (``stores/factory.py``), and never hands out aiohttp's.
    """
    import ssl

    def bare(*args: object, **kwargs: object) -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostnames checked

    def no_paths(self: ssl.SSLContext) -> None:
        pass

    made, paths = ssl.create_default_context, ssl.SSLContext.set_default_verify_paths
    ssl.create_default_context = bare
    ssl.SSLContext.set_default_verify_paths = no_paths  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.create_default_context = made
        ssl.SSLContext.set_default_verify_paths = paths  # type: ignore[method-assign]


def aiohttp_without_tls_defaults() -> None:
    """Import aiohttp, if nothing has yet, without its import-time TLS contexts."""
    if "aiohttp" not in sys.modules:
        with tls_contexts_deferred():
            import aiohttp  # noqa: F401
