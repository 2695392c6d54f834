#!/usr/bin/env python3
"""Independent float64 forward pass of a converted Llama checkpoint, in numpy only.

Cross-checks the torch engine: prints the top-5 next-token log-probabilities after the given token
ids. Reads `model.safetensors` (f32) and `config.json` of a `kaito convert` output; needs numpy.

    python3 scripts/reference-forward.py CHECKPOINT_DIR 1,9690,198,...
"""
import json
import struct
import sys

import numpy as np


def main() -> None:
    directory, ids = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
    cfg = json.load(open(f"{directory}/config.json"))
    raw = open(f"{directory}/model.safetensors", "rb").read()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    weights = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", f"{name}: convert with --dtype f32"
        start, end = meta["data_offsets"]
        weights[name] = np.frombuffer(raw[base + start : base + end], dtype=np.float32).reshape(meta["shape"])

    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    t = len(ids)
    x = weights["model.embed_tokens.weight"][ids].astype(np.float64)
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    angles = np.outer(np.arange(t), inv_freq)
    angles = np.concatenate([angles, angles], -1)
    cos, sin = np.cos(angles), np.sin(angles)
    causal = np.triu(np.full((t, t), -np.inf), 1)

    def rms_norm(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    def rotate_half(v):
        half = v.shape[-1] // 2
        return np.concatenate([-v[..., half:], v[..., :half]], -1)

    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, weights[p + "input_layernorm.weight"])
        q = (h @ weights[p + "self_attn.q_proj.weight"].T).reshape(t, heads, head_dim).transpose(1, 0, 2)
        k = (h @ weights[p + "self_attn.k_proj.weight"].T).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
        v = (h @ weights[p + "self_attn.v_proj.weight"].T).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = np.repeat(k, heads // kv_heads, 0), np.repeat(v, heads // kv_heads, 0)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim) + causal
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(t, heads * head_dim)
        x = x + attended @ weights[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, weights[p + "post_attention_layernorm.weight"])
        gate = h @ weights[p + "mlp.gate_proj.weight"].T
        up = h @ weights[p + "mlp.up_proj.weight"].T
        x = x + ((gate / (1 + np.exp(-gate))) * up) @ weights[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, weights["model.norm.weight"])
    head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    logits = x[-1] @ head.T
    logprobs = logits - logits.max()
    logprobs -= np.log(np.exp(logprobs).sum())
    top = np.argsort(-logprobs)[:5]
    print([(int(i), round(float(logprobs[i]), 4)) for i in top])


if __name__ == "__main__":
    main()
