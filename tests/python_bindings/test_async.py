"""Async variants run on kaito's shared tokio runtime without blocking the event loop."""

from __future__ import annotations

import asyncio
import math
import time
from typing import List

import kaito

PROMPT = "The capital of France is"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_agenerate_matches_generate(llm: kaito.LLM) -> None:
    expected = llm.generate(PROMPT, max_tokens=8, temperature=0)
    assert asyncio.run(llm.agenerate(PROMPT, max_tokens=8, temperature=0)) == expected


def test_astream_yields_pieces(llm: kaito.LLM) -> None:
    expected = llm.generate(PROMPT, max_tokens=8, temperature=0)

    async def collect() -> List[str]:
        return [p async for p in llm.astream(PROMPT, max_tokens=8, temperature=0)]

    pieces = asyncio.run(collect())
    assert len(pieces) > 1
    assert "".join(pieces) == expected


def test_achat_and_achat_stream(llm: kaito.LLM) -> None:
    expected = llm.chat(HELLO, max_tokens=8, temperature=0).choices[0].message.content

    async def both() -> tuple:
        reply = await llm.achat(HELLO, max_tokens=8, temperature=0)
        chunks = [c async for c in llm.achat_stream(HELLO, max_tokens=8, temperature=0)]
        return reply, chunks

    reply, chunks = asyncio.run(both())
    assert reply.choices[0].message.content == expected
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].usage is not None


def test_gather_runs_requests_concurrently_and_the_loop_stays_free(llm: kaito.LLM) -> None:
    prompts = ["Once upon a time", "Rust is", "The sky is", "My favourite food is"]
    expected = [llm.generate(p, max_tokens=8, temperature=0) for p in prompts]

    async def run() -> tuple:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        answers = await asyncio.gather(*(llm.agenerate(p, max_tokens=8, temperature=0) for p in prompts))
        stop.set()
        await task
        return answers, ticks

    answers, ticks = asyncio.run(run())
    assert list(answers) == expected
    assert ticks > 5


def test_leaving_astream_early_cancels(llm: kaito.LLM) -> None:
    async def first() -> str:
        async for piece in llm.astream(PROMPT, max_tokens=300, temperature=0):
            return piece
        return ""

    assert asyncio.run(first())
    assert llm.generate(PROMPT, max_tokens=2, temperature=0) is not None


def test_cancelling_an_await_cancels_the_generation(small_llm: kaito.LLM) -> None:
    async def cancelled() -> None:
        try:
            # Greedy: a sampled story may end within 0.3 s.
            long = small_llm.agenerate("Once upon a time", max_tokens=450, temperature=0)
            await asyncio.wait_for(long, 0.3)
        except asyncio.TimeoutError:
            return
        raise AssertionError("a 450-token generation finished within 0.3 s")

    asyncio.run(cancelled())
    # The only slot is free again (the cancelled work is dropped asynchronously, within moments).
    deadline = time.monotonic() + 3
    while True:
        try:
            assert small_llm.generate("Hi", max_tokens=2) is not None
            return
        except kaito.OverloadedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_aembed(llm: kaito.LLM) -> None:
    vectors = asyncio.run(llm.aembed(["hello", "world"]))
    assert len(vectors) == 2
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)


def test_async_errors_raise_the_mapped_exception(llm: kaito.LLM) -> None:
    async def bad() -> str:
        return await llm.agenerate(PROMPT, temperature=9)

    try:
        asyncio.run(bad())
    except kaito.InvalidRequestError as e:
        assert "temperature" in str(e)
    else:
        raise AssertionError("no error")
