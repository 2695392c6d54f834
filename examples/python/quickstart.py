# Run: pip install target/wheels/kaito-*.whl && python examples/python/quickstart.py
"""kaito from Python: the bundled model in-process, streaming, async, a Workspace, and a real
OpenAI-compatible server for the official `openai` client (if installed).

Set KAITO_TEST_MODEL to a GGUF file to use it instead of the bundled default model.
"""

from __future__ import annotations

import asyncio
import os
import sys

import kaito


def main() -> int:
    kaito.enable_logging("ERROR")  # library events to Python logging (off by default)
    llm = kaito.LLM(os.environ.get("KAITO_TEST_MODEL"), threads=1, ctx_size=1024)
    print(f"loaded {llm.model} ({llm.info()['parameters']:,} parameters)")

    # Chat, OpenAI-shaped.
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    reply = llm.chat(messages, max_tokens=32, temperature=0)
    print("chat:", reply.choices[0].message.content, f"[{reply.usage.total_tokens} tokens]")

    # Streaming text completion.
    print("stream: ", end="")
    for piece in llm.generate("Rust is a language that", max_tokens=24, temperature=0, stream=True):
        print(piece, end="", flush=True)
    print()

    # Async, on kaito's tokio runtime.
    async def together() -> list[str]:
        prompts = ["The sky is", "Bread is made from"]
        return list(await asyncio.gather(*(llm.agenerate(p, max_tokens=8, temperature=0) for p in prompts)))

    print("async:", asyncio.run(together()))

    # Embeddings and tokens.
    vectors = llm.embed(["a cat", "a dog"])
    print(f"embed: {len(vectors)} vectors of {len(vectors[0])} floats; tokens of 'Hello': {llm.tokenize('Hello')}")

    # A KAITO Workspace: render the Kubernetes objects and size it.
    ws = kaito.Workspace.from_yaml(
        """
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: smol}
resource: {labelSelector: {matchLabels: {apps: smol}}}
inference: {preset: {name: smollm2-135m-instruct}}
"""
    )
    ws.validate()
    print("render:", [f"{o['kind']}/{o['metadata']['name']}" for o in ws.render()])
    print("estimate:", next(line.strip() for line in ws.estimate().splitlines() if "result:" in line))

    # A real OpenAI-compatible server sharing the loaded model.
    with kaito.serve(llm) as server:
        print("serving at", server.url)
        try:
            import openai
        except ImportError:
            return 0
        client = openai.OpenAI(base_url=server.url, api_key="unused")
        answer = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=16,
        )
        print("openai client:", answer.choices[0].message.content)

    try:
        llm.generate("Hello", temperature=5)
    except kaito.InvalidRequestError as e:
        print("error:", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
