"""kaito: run open-source LLMs in-process, behind an OpenAI-compatible server, or on Kubernetes
from a KAITO ``Workspace``.

>>> import kaito
>>> llm = kaito.LLM()                                    # the bundled SmolLM2-135M-Instruct
>>> reply = llm.chat([{"role": "user", "content": "Hi"}], max_tokens=16)
>>> reply.choices[0].message.content                     # doctest: +SKIP
"""

from __future__ import annotations

from . import _kaito
from ._kaito import DEFAULT_MODEL, Workspace, __version__, enable_logging
from .errors import (
    GenerationError,
    InvalidRequestError,
    InvalidSpecError,
    KaitoError,
    ModelLoadError,
    ModelNotFoundError,
    OverloadedError,
)
from .llm import LLM, Message
from .server import Server, serve
from .types import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ChatResponse,
    ChoiceDelta,
    ChunkChoice,
    Completion,
    CompletionChoice,
    Usage,
)

__all__ = [
    "__version__",
    "DEFAULT_MODEL",
    "LLM",
    "Message",
    "Workspace",
    "Server",
    "serve",
    "enable_logging",
    "KaitoError",
    "InvalidSpecError",
    "InvalidRequestError",
    "ModelLoadError",
    "ModelNotFoundError",
    "GenerationError",
    "OverloadedError",
    "Usage",
    "ChatMessage",
    "ChatChoice",
    "ChatCompletion",
    "ChatResponse",
    "ChoiceDelta",
    "ChunkChoice",
    "ChatCompletionChunk",
    "CompletionChoice",
    "Completion",
]

