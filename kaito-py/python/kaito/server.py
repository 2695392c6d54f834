"""`kaito.serve`: the OpenAI-compatible HTTP server, in this process."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Optional, Sequence, Type, Union

from . import _kaito
from .llm import LLM, StrPath

__all__ = ["serve", "Server"]


class Server:
    """A running OpenAI-compatible server (``/v1/chat/completions``, ``/v1/completions``,
    ``/v1/embeddings``, ``/v1/models``, ``/health``, ``/ready``, ``/metrics``).

    Use it as a context manager, or call :meth:`stop`::

        with kaito.serve() as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused")
    """

    def __init__(self, native: _kaito.Server, llm: LLM) -> None:
        self._native = native
        self.llm = llm
        """The model being served (usable in-process at the same time)."""

    @property
    def url(self) -> str:
        """Base URL of the OpenAI API, e.g. ``http://127.0.0.1:41234/v1``."""
        return self._native.url

    @property
    def model(self) -> str:
        """The model id clients pass as ``model``."""
        return self._native.model

    @property
    def running(self) -> bool:
        """True until :meth:`stop`."""
        return self._native.running

    def stop(self, timeout: float = 10.0) -> None:
        """Stops accepting connections and waits up to ``timeout`` seconds for in-flight requests."""
        self._native.stop(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server(url={self.url!r}, model={self.model!r})"


def serve(
    model: Union[LLM, _kaito.Workspace, StrPath, None] = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: Optional[str] = None,
    threads: Optional[int] = None,
    ctx_size: Optional[int] = None,
    parallel: Optional[int] = None,
    max_queue: Optional[int] = None,
    cache_dir: Optional[StrPath] = None,
    cache_max_gib: Optional[float] = None,
    cache_tiers: Optional[Sequence[StrPath]] = None,
    served_name: Optional[str] = None,
) -> Server:
    """Starts an OpenAI-compatible server for ``model`` and returns once it is ready.

    ``model`` is an already loaded :class:`kaito.LLM` (shared, not reloaded), a
    :class:`kaito.Workspace`, a GGUF path / ``hf:`` reference / preset name, or ``None`` for the
    bundled default model. ``port=0`` picks a free port (see :attr:`Server.url`). With
    ``api_key``, ``/v1/*`` requires ``Authorization: Bearer <api_key>``. The other arguments
    are those of :class:`kaito.LLM` (ignored when ``model`` is an ``LLM``).
    """
    if isinstance(model, LLM):
        llm = model
    else:
        workspace = model if isinstance(model, _kaito.Workspace) else None
        path = None if workspace is not None or model is None else os.fspath(model)  # type: ignore[arg-type]
        llm = LLM(
            path,
            workspace=workspace,
            threads=threads,
            ctx_size=ctx_size,
            parallel=parallel,
            max_queue=max_queue,
            cache_dir=cache_dir,
            cache_max_gib=cache_max_gib,
            cache_tiers=cache_tiers,
            served_name=served_name,
        )
    native = _kaito.Server(llm._engine, host=host, port=port, api_key=api_key)
    return Server(native, llm)
