# Run: mypy --strict examples/python/typed_usage.py   (type-checks against the installed wheel's stubs)
"""A small, fully typed use of the kaito API; kaito-py/test.sh checks it with `mypy --strict`."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Dict, Iterator, List, Optional

import kaito


def answer(llm: kaito.LLM, question: str) -> str:
    reply: kaito.ChatCompletion = llm.chat([{"role": "user", "content": question}], max_tokens=16)
    usage: kaito.Usage = reply.usage
    assert usage.total_tokens >= usage.prompt_tokens
    return reply.choices[0].message.content


def stream(llm: kaito.LLM, prompt: str) -> str:
    pieces: Iterator[str] = llm.generate(prompt, stream=True, max_tokens=8, stop=["\n"])
    chunks: Iterator[kaito.ChatCompletionChunk] = llm.chat(
        [{"role": "user", "content": prompt}], stream=True, max_tokens=8
    )
    deltas: List[Optional[str]] = [c.choices[0].delta.content for c in chunks]
    return "".join(pieces) + "".join(d or "" for d in deltas)


async def concurrently(llm: kaito.LLM, prompts: List[str]) -> List[str]:
    results: List[str] = list(await asyncio.gather(*(llm.agenerate(p, max_tokens=4) for p in prompts)))
    gen: AsyncIterator[str] = llm.astream(prompts[0], max_tokens=4)
    async for piece in gen:
        results.append(piece)
    reply = await llm.achat([{"role": "user", "content": prompts[0]}], max_tokens=4)
    results.append(reply.choices[0].message.content)
    vectors: List[List[float]] = await llm.aembed(prompts)
    assert len(vectors) == len(prompts)
    return results


def kubernetes(yaml_text: str) -> List[str]:
    try:
        ws = kaito.Workspace.from_yaml(yaml_text)
        ws.validate()
    except kaito.InvalidSpecError as e:
        return [f"invalid: {e} ({e.kind})"]
    objects: List[Dict[str, object]] = ws.render()
    report: str = ws.estimate()
    return [str(o["kind"]) for o in objects] + [report, ws.to_yaml()]


def serve_and_stop(llm: kaito.LLM) -> str:
    with kaito.serve(llm, port=0) as server:
        url: str = server.url
    return url


def main() -> None:
    llm = kaito.LLM(threads=1, ctx_size=256)
    print(answer(llm, "Hi"), stream(llm, "Hello"), asyncio.run(concurrently(llm, ["a", "b"])))
    print(serve_and_stop(llm), llm.tokenize("Hi"), llm.detokenize(llm.tokenize("Hi")))


if __name__ == "__main__":
    main()
