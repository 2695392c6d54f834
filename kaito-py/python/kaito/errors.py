"""Exceptions raised by kaito.

Every exception derives from :class:`KaitoError` and carries the Rust error's message and a
stable ``kind`` label (``"invalid_spec"``, ``"model_not_found"``, ``"overloaded"``, ...).
The mapping from Rust errors lives in one place: ``kaito-py/src/error.rs``.
"""

from __future__ import annotations

__all__ = [
    "KaitoError",
    "InvalidSpecError",
    "InvalidRequestError",
    "ModelLoadError",
    "ModelNotFoundError",
    "GenerationError",
    "OverloadedError",
]


class KaitoError(Exception):
    """Base class of every kaito error."""

    kind: str = "kaito"
    """Stable, low-cardinality label of the underlying Rust error variant."""


class InvalidSpecError(KaitoError, ValueError):
    """A Workspace (or other spec) failed to parse or validate; the message names the field."""


class InvalidRequestError(KaitoError, ValueError):
    """A generation argument is out of range or malformed (the message names it), the prompt
    does not fit the context window, or the chat template rejected the messages."""


class ModelLoadError(KaitoError):
    """The model could not be fetched or loaded."""


class ModelNotFoundError(ModelLoadError, LookupError):
    """The model is neither a file, an ``hf:`` reference nor a known preset."""


class GenerationError(KaitoError):
    """The engine failed while generating, or does not support the operation."""


class OverloadedError(KaitoError):
    """More requests are in flight than ``parallel + max_queue``; retry later."""
