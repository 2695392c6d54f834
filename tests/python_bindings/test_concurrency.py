"""The GIL is released during engine work: other threads run, several threads generate at once,
Ctrl-C interrupts, and a full engine answers with OverloadedError."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

import kaito

PROMPTS = ["The capital of France is", "Rust is a language that", "Once upon a time", "1, 2, 3,"]


def test_other_python_threads_run_during_generation(llm: kaito.LLM) -> None:
    done = threading.Event()
    result: List[str] = []

    def work() -> None:
        result.append(llm.generate("Once upon a time", max_tokens=48, temperature=0))
        done.set()

    worker = threading.Thread(target=work)
    started = time.monotonic()
    worker.start()
    ticks, longest_gap, last = 0, 0.0, time.monotonic()
    while not done.is_set():
        now = time.monotonic()
        longest_gap = max(longest_gap, now - last)
        last = now
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.monotonic() - started
    assert result and result[0]
    assert elapsed > 0.2, "generation too quick to prove anything"
    # With the GIL held by the generating thread, this loop would stall for the whole call.
    assert longest_gap < 0.25, f"main thread stalled {longest_gap:.3f}s of {elapsed:.3f}s"
    assert ticks > 50


def test_threads_generate_concurrently_with_sequential_answers(llm: kaito.LLM) -> None:
    sequential = [llm.generate(p, max_tokens=8, temperature=0) for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        concurrent = list(pool.map(lambda p: llm.generate(p, max_tokens=8, temperature=0), PROMPTS))
    assert concurrent == sequential


def test_overloaded_engine_raises(small_llm: kaito.LLM) -> None:
    small = small_llm
    stream = small.generate("Once upon a time", max_tokens=100, temperature=0, stream=True)
    next(iter(stream))  # holds the only slot
    with pytest.raises(kaito.OverloadedError, match="overloaded") as info:
        small.generate("Hello", max_tokens=2)
    assert info.value.kind == "overloaded"
    stream.close()
    assert small.generate("Hello", max_tokens=2, temperature=0) is not None


@pytest.mark.skipif(os.name != "posix", reason="uses SIGINT")
def test_ctrl_c_interrupts_a_long_generation(llm: kaito.LLM) -> None:
    # Python keeps SIGINT ignored when it starts ignored, as it does in a background job of a
    # non-interactive shell (`cmd &` in a script, nohup; some CI runners): Ctrl-C is then never
    # delivered at all. The test wants Python's usual handler, as an interactive session has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            llm.generate("Once upon a time", max_tokens=450, temperature=0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 5
    # The engine is fine afterwards.
    assert llm.generate("Hello", max_tokens=2, temperature=0) is not None
