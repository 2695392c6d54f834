#!/usr/bin/env python3
"""Helpers of scripts/build-image.sh (run with the project's .venv: needs `openai` and PyYAML).

    image-smoke.py pod < rendered.yaml
        Prints, as JSON, the runtime container that `kaito render` put in the Workspace's StatefulSet:
        {"image", "command", "args", "ports", "env", "runAsUser", "readOnlyRootFilesystem"}.

    image-smoke.py check --base-url http://127.0.0.1:PORT --model smollm2-135m-instruct
        Checks a running server with the official `openai` client: probes (/health, /ready, /metrics), the
        model list names MODEL, one greedy chat completion returns text, one streamed chat completion returns
        text in several chunks and a finish_reason. Exits non-zero with a message on the first failure.
"""

import argparse
import json
import sys
import time
import urllib.request


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode("utf-8", "replace")


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"image-smoke: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"image-smoke: ok  {what}")


def pod() -> None:
    import yaml

    for doc in yaml.safe_load_all(sys.stdin):
        if not doc or doc.get("kind") != "StatefulSet":
            continue
        spec = doc["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == "kaito"]
        print(
            json.dumps(
                {
                    "image": c["image"],
                    "command": c["command"],
                    "args": c["args"],
                    "ports": [p["containerPort"] for p in c.get("ports", [])],
                    "env": {e["name"]: e.get("value") for e in c.get("env", [])},
                    "runAsUser": spec["securityContext"]["runAsUser"],
                    "readOnlyRootFilesystem": c["securityContext"].get("readOnlyRootFilesystem", False),
                }
            )
        )
        return
    sys.exit("image-smoke: no StatefulSet in the rendered objects")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("pod")
    c = sub.add_parser("check")
    c.add_argument("--base-url", required=True, help="http://HOST:PORT (without /v1)")
    c.add_argument("--model", required=True)
    args = p.parse_args()
    if args.cmd == "pod":
        pod()
    else:
        smoke(args.base_url.rstrip("/"), args.model)


def smoke(base: str, model: str) -> None:
    status, _ = get(f"{base}/health")
    check(status == 200, "GET /health is 200")
    status, _ = get(f"{base}/ready")
    check(status == 200, "GET /ready is 200")
    status, metrics = get(f"{base}/metrics")
    check(status == 200 and "vllm:" in metrics, "GET /metrics has vllm:* series")

    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="unused", timeout=120, max_retries=0)

    ids = [m.id for m in client.models.list().data]
    check(model in ids, f"models.list() names {model} ({ids})")

    t = time.monotonic()
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=24,
    )
    text = reply.choices[0].message.content or ""
    check(
        bool(text.strip()) and reply.usage is not None and reply.usage.completion_tokens > 0,
        f"chat completion ({time.monotonic() - t:.2f}s, {reply.usage.completion_tokens if reply.usage else 0}"
        f" tokens, finish_reason={reply.choices[0].finish_reason}): {text.strip()!r}",
    )

    t = time.monotonic()
    pieces: list[str] = []
    finish = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a haiku about Rust."}],
        temperature=0,
        max_tokens=24,
        stream=True,
    )
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.content
        if delta:
            pieces.append(delta)
        finish = chunk.choices[0].finish_reason or finish
    text = "".join(pieces)
    check(
        len(pieces) > 1 and bool(text.strip()) and finish is not None,
        f"streamed chat completion ({time.monotonic() - t:.2f}s, {len(pieces)} chunks, finish_reason={finish}):"
        f" {text.strip()!r}",
    )


if __name__ == "__main__":
    main()
