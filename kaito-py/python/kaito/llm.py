"""`kaito.LLM`: a model loaded in this process."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Literal,
    Union,
    overload,
)

from . import _kaito
from .types import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ChoiceDelta,
    ChunkChoice,
    Completion,
    CompletionChoice,
    Usage,
)

__all__ = ["LLM", "Message"]

Message = Mapping[str, Any]
"""An OpenAI chat message: ``{"role": "user", "content": "Hi"}`` (content may also be a list of
``{"type": "text", "text": ...}`` parts)."""

StrPath = Union[str, "os.PathLike[str]"]


def _sampling(**kwargs: Any) -> Dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


async def _await_native(start: Callable[[Callable[[bool, Any], None]], _kaito.Task]) -> Any:
    """Runs a native `*_async(callback)` call on the shared tokio runtime and awaits its result;
    cancelling the awaiting coroutine cancels the native work."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def done(ok: bool, value: Any) -> None:  # called from a runtime thread
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:  # the loop was closed meanwhile
            pass

    task = start(done)
    try:
        return await future
    except asyncio.CancelledError:
        task.cancel()
        raise


def _events(generation: _kaito.Generation) -> Iterator[Tuple[int, str, Optional[str], Optional[int]]]:
    try:
        while True:
            event = generation.next_event()
            if event is None:
                return
            yield event
    finally:
        generation.close()


async def _aevents(
    generation: _kaito.Generation,
) -> AsyncIterator[Tuple[int, str, Optional[str], Optional[int]]]:
    try:
        while True:
            event = await _await_native(generation.next_event_async)
            if event is None:
                return
            yield event
    finally:
        generation.close()


class _ChunkBuilder:
    """Turns engine events into `ChatCompletionChunk`s (role first, usage on the last finish)."""

    def __init__(self, model: str, generation: _kaito.Generation) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())
        self.prompt_tokens = generation.prompt_tokens
        self.n = generation.n
        self.started: set[int] = set()
        self.finished = 0
        self.completion_tokens = 0

    def chunk(self, event: Tuple[int, str, Optional[str], Optional[int]]) -> Optional[ChatCompletionChunk]:
        index, text, finish_reason, completion_tokens = event
        usage = None
        if finish_reason is None:
            if not text:
                return None
            role = None if index in self.started else "assistant"
            self.started.add(index)
            choice = ChunkChoice(index=index, delta=ChoiceDelta(role=role, content=text))
        else:
            self.finished += 1
            self.completion_tokens += completion_tokens or 0
            choice = ChunkChoice(index=index, delta=ChoiceDelta(), finish_reason=finish_reason)
            if self.finished == self.n:
                usage = Usage(
                    prompt_tokens=self.prompt_tokens,
                    completion_tokens=self.completion_tokens,
                    total_tokens=self.prompt_tokens + self.completion_tokens,
                )
        return ChatCompletionChunk(
            id=self.id, model=self.model, created=self.created, choices=[choice], usage=usage
        )


class LLM:
    """A model loaded in this process, with its chat template.

    ``LLM()`` loads the bundled default model (SmolLM2-135M-Instruct), downloading it into the
    cache on first use exactly as ``kaito serve`` does. ``model`` may be a GGUF path,
    ``"hf:ORG/REPO/FILE.gguf[@REV]"`` or a preset name; ``workspace`` takes the model and engine
    settings from a :class:`kaito.Workspace` (explicit arguments win).

    The model store is ``cache_dir`` (default ``$KAITO_CACHE_DIR`` or ``~/.cache/kaito``), as for
    the CLI: ``cache_max_gib`` bounds it (after a fetch, the least recently used models no process
    holds are evicted; a model larger than the limit is refused), and ``cache_tiers`` names
    read-only stores searched before the network (a hit is hard-linked in, or copied).

    Every engine call releases the GIL: other Python threads keep running, and several threads
    may generate at once (up to ``parallel`` are decoded together, ``max_queue`` more wait;
    beyond that :class:`kaito.OverloadedError`). Ctrl-C interrupts a blocking call in the main
    thread and cancels its generation.

    ``deterministic`` (default True) decodes batch-invariant: a greedy answer does not depend on
    concurrent calls or on cached prefixes. ``deterministic=False`` batches concurrent calls and
    reuses cached prompt prefixes, as ``kaito serve`` does by default: faster under concurrency.

    Sampling keywords (all optional, OpenAI semantics, checked with the server's rules):
    ``max_tokens`` (default: until the model stops or the context is full), ``temperature``
    (0–2, 0 = greedy; default 1), ``top_p``, ``top_k``, ``min_p``, ``seed``, ``stop`` (a string
    or up to 4), ``presence_penalty``, ``frequency_penalty`` and, where results hold several
    choices, ``n``.
    """

    def __init__(
        self,
        model: Optional[StrPath] = None,
        *,
        workspace: Optional[_kaito.Workspace] = None,
        backend: Optional[str] = None,
        threads: Optional[int] = None,
        ctx_size: Optional[int] = None,
        parallel: Optional[int] = None,
        max_queue: Optional[int] = None,
        cache_dir: Optional[StrPath] = None,
        cache_max_gib: Optional[float] = None,
        cache_tiers: Optional[Sequence[StrPath]] = None,
        served_name: Optional[str] = None,
        deterministic: bool = True,
    ) -> None:
        self._engine = _kaito.Engine(
            os.fspath(model) if model is not None else None,
            workspace=workspace,
            backend=backend,
            threads=threads,
            ctx_size=ctx_size,
            parallel=parallel,
            max_queue=max_queue,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            cache_max_gib=cache_max_gib,
            cache_tiers=[os.fspath(t) for t in cache_tiers] if cache_tiers is not None else None,
            served_name=served_name,
            deterministic=deterministic,
        )

    @property
    def model(self) -> str:
        """The model id (reported in responses and served by :func:`kaito.serve`)."""
        return self._engine.model

    @property
    def context_size(self) -> int:
        """Context window of one sequence, in tokens."""
        return self._engine.context_size

    def info(self) -> Dict[str, Any]:
        """Model metadata read from the weights (architecture, parameters, quantization, ...)."""
        return self._engine.info()

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r})"

    # -- text completion -------------------------------------------------------------------

    @overload
    def generate(
        self,
        prompt: str,
        *,
        stream: Literal[False] = False,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> str: ...

    @overload
    def generate(
        self,
        prompt: str,
        *,
        stream: Literal[True],
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> Generator[str, None, None]: ...

    def generate(
        self,
        prompt: str,
        *,
        stream: bool = False,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> Union[str, Generator[str, None, None]]:
        """Continues ``prompt`` (raw text, no chat template) and returns the new text, or with
        ``stream=True`` a generator of text pieces as they are generated (leaving the loop early
        or calling ``.close()`` cancels the generation)."""
        sampling = _sampling(
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        if stream:
            generation = self._engine.stream(prompt, **sampling)
            return (text for _, text, finish, _ in _events(generation) if finish is None and text)
        _, choices = self._engine.complete(prompt, **sampling)
        return choices[0][0]

    def complete(
        self,
        prompt: str,
        *,
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> Completion:
        """Like :meth:`generate`, returning an OpenAI-shaped :class:`kaito.Completion` with
        ``n`` choices and ``usage``."""
        sampling = _sampling(
            n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        prompt_tokens, choices = self._engine.complete(prompt, **sampling)
        return self._completion(prompt_tokens, choices)

    async def agenerate(
        self,
        prompt: str,
        *,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> str:
        """``await``-able :meth:`generate`, run on kaito's shared tokio runtime."""
        sampling = _sampling(
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        _, choices = await _await_native(
            lambda done: self._engine.complete_async(prompt, done, **sampling)
        )
        return str(choices[0][0])

    async def astream(
        self,
        prompt: str,
        *,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> AsyncIterator[str]:
        """``async for text in llm.astream(prompt)``: :meth:`generate` with ``stream=True``,
        without blocking the event loop. Leaving the loop early cancels the generation."""
        sampling = _sampling(
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        generation = self._engine.stream(prompt, **sampling)
        async for _, text, finish, _ in _aevents(generation):
            if finish is None and text:
                yield text

    # -- chat ------------------------------------------------------------------------------

    @overload
    def chat(
        self,
        messages: Sequence[Message],
        *,
        stream: Literal[False] = False,
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> ChatCompletion: ...

    @overload
    def chat(
        self,
        messages: Sequence[Message],
        *,
        stream: Literal[True],
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> Generator[ChatCompletionChunk, None, None]: ...

    def chat(
        self,
        messages: Sequence[Message],
        *,
        stream: bool = False,
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> Union[ChatCompletion, Generator[ChatCompletionChunk, None, None]]:
        """Answers OpenAI-shaped ``messages`` with the model's chat template:
        ``llm.chat(msgs).choices[0].message.content``. With ``stream=True``, an iterator of
        :class:`kaito.ChatCompletionChunk` (``chunk.choices[0].delta.content``)."""
        sampling = _sampling(
            n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        prompt = self._engine.chat_prompt(list(messages))
        if stream:
            return self._chunks(self._engine.stream(prompt, **sampling))
        prompt_tokens, choices = self._engine.complete(prompt, **sampling)
        return self._chat_completion(prompt_tokens, choices)

    async def achat(
        self,
        messages: Sequence[Message],
        *,
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> ChatCompletion:
        """``await``-able :meth:`chat`."""
        sampling = _sampling(
            n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        prompt = self._engine.chat_prompt(list(messages))
        prompt_tokens, choices = await _await_native(
            lambda done: self._engine.complete_async(prompt, done, **sampling)
        )
        return self._chat_completion(prompt_tokens, choices)

    async def achat_stream(
        self,
        messages: Sequence[Message],
        *,
        n: Optional[int] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        min_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """``async for chunk in llm.achat_stream(msgs)``: :meth:`chat` with ``stream=True``."""
        sampling = _sampling(
            n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            min_p=min_p, seed=seed, stop=_stops(stop), presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
        )
        prompt = self._engine.chat_prompt(list(messages))
        generation = self._engine.stream(prompt, **sampling)
        builder = _ChunkBuilder(self.model, generation)
        async for event in _aevents(generation):
            chunk = builder.chunk(event)
            if chunk is not None:
                yield chunk

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt :meth:`chat` generates from: ``messages`` through the chat template."""
        return self._engine.chat_prompt(list(messages))

    # -- embeddings and tokens ---------------------------------------------------------------

    def embed(self, texts: Union[str, Sequence[str]]) -> List[List[float]]:
        """Mean-pooled, L2-normalised embedding of each text (one text: a list of one)."""
        return self._engine.embed([texts] if isinstance(texts, str) else list(texts))

    async def aembed(self, texts: Union[str, Sequence[str]]) -> List[List[float]]:
        """``await``-able :meth:`embed`."""
        items = [texts] if isinstance(texts, str) else list(texts)
        result: List[List[float]] = await _await_native(
            lambda done: self._engine.embed_async(items, done)
        )
        return result

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> List[int]:
        """Token ids of ``text``. ``add_special`` adds BOS where the model wants one;
        ``parse_special`` turns markers such as ``<|im_start|>`` into their tokens."""
        return self._engine.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of token ids."""
        return self._engine.detokenize(list(tokens))

    # -- helpers ---------------------------------------------------------------------------

    def _chunks(self, generation: _kaito.Generation) -> Generator[ChatCompletionChunk, None, None]:
        builder = _ChunkBuilder(self.model, generation)
        for event in _events(generation):
            chunk = builder.chunk(event)
            if chunk is not None:
                yield chunk

    def _chat_completion(
        self, prompt_tokens: int, choices: List[Tuple[str, Optional[str], int]]
    ) -> ChatCompletion:
        completion_tokens = sum(c[2] for c in choices)
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            model=self.model,
            created=int(time.time()),
            choices=[
                ChatChoice(index=i, message=ChatMessage(role="assistant", content=text), finish_reason=reason)
                for i, (text, reason, _) in enumerate(choices)
            ],
            usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens),
        )

    def _completion(
        self, prompt_tokens: int, choices: List[Tuple[str, Optional[str], int]]
    ) -> Completion:
        completion_tokens = sum(c[2] for c in choices)
        return Completion(
            id=f"cmpl-{uuid.uuid4().hex}",
            model=self.model,
            created=int(time.time()),
            choices=[
                CompletionChoice(index=i, text=text, finish_reason=reason)
                for i, (text, reason, _) in enumerate(choices)
            ],
            usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens),
        )


def _stops(stop: Union[str, Sequence[str], None]) -> Union[str, List[str], None]:
    if stop is None or isinstance(stop, str):
        return stop
    return list(stop)
