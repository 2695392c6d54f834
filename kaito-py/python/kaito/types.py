"""OpenAI-shaped result objects: ``response.choices[0].message.content``, ``response.usage``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = [
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


class _ToDict:
    def to_dict(self) -> Dict[str, Any]:
        """The object as plain dicts and lists, as the OpenAI HTTP API would return it."""
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class Usage(_ToDict):
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ChatMessage(_ToDict):
    """A message the model wrote."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatChoice(_ToDict):
    """One answer of a chat completion."""

    index: int
    message: ChatMessage
    finish_reason: Optional[str]
    """``"stop"`` (end of generation or a stop string) or ``"length"`` (``max_tokens``)."""


@dataclass(frozen=True)
class ChatCompletion(_ToDict):
    """The result of :meth:`kaito.LLM.chat`."""

    id: str
    model: str
    created: int
    choices: List[ChatChoice]
    usage: Usage
    object: str = "chat.completion"


ChatResponse = ChatCompletion
"""Alias of :class:`ChatCompletion`."""


@dataclass(frozen=True)
class ChoiceDelta(_ToDict):
    """New text of one choice in a streamed chat completion."""

    role: Optional[str] = None
    content: Optional[str] = None


@dataclass(frozen=True)
class ChunkChoice(_ToDict):
    """One choice's part of a :class:`ChatCompletionChunk`."""

    index: int
    delta: ChoiceDelta
    finish_reason: Optional[str] = None


@dataclass(frozen=True)
class ChatCompletionChunk(_ToDict):
    """One piece of a streamed chat completion. The chunk that finishes the last choice carries
    ``usage``; every other chunk has ``usage=None``."""

    id: str
    model: str
    created: int
    choices: List[ChunkChoice]
    usage: Optional[Usage] = None
    object: str = "chat.completion.chunk"


@dataclass(frozen=True)
class CompletionChoice(_ToDict):
    """One answer of a text completion."""

    index: int
    text: str
    finish_reason: Optional[str]


@dataclass(frozen=True)
class Completion(_ToDict):
    """The result of :meth:`kaito.LLM.complete`."""

    id: str
    model: str
    created: int
    choices: List[CompletionChoice]
    usage: Usage
    object: str = field(default="text_completion")
