"""Extractive summary: TextRank over the TF-IDF cosine similarity of the sentences."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["centrality", "summarise"]

_DAMPING = 0.85
_TOLERANCE = 1e-9
_MAX_ITERATIONS = 200


def centrality(sentences: list[str]) -> np.ndarray[Any, Any]:
    """Each sentence's TextRank score (they sum to 1; all equal when nothing is shared).

    The graph joins every two sentences with the cosine similarity of their
    TF-IDF vectors (English stop words left out: scikit-learn's list, no
    download); a sentence is central when it is similar to other central ones.
    """
    n = len(sentences)
    if n == 0:
        return np.zeros(0)
    try:
        vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(sentences)
    except ValueError:  # no word but stop words: nothing to rank by
        return np.full(n, 1.0 / n)
    # Rows are L2-normalised, so the dot products are the cosine similarities.
    similarity = (vectors @ vectors.T).toarray()
    np.fill_diagonal(similarity, 0.0)
    out_weight = similarity.sum(axis=1, keepdims=True)
    # A sentence sharing no word with any other links to all equally (PageRank's dangling rule).
    transition = np.where(
        out_weight > 0, similarity / np.where(out_weight > 0, out_weight, 1), 1 / n
    )
    scores = np.full(n, 1.0 / n)
    for _ in range(_MAX_ITERATIONS):
        updated = (1 - _DAMPING) / n + _DAMPING * transition.T @ scores
        if np.abs(updated - scores).sum() < _TOLERANCE:
            scores = updated
            break
        scores = updated
    return scores


def summarise(sentences: list[str], count: int) -> list[int]:
    """The indices of the ``count`` most central sentences, in their original order.

    Ties go to the earlier sentence; with ``count`` or fewer sentences, all of them.
    """
    if len(sentences) <= count:
        return list(range(len(sentences)))
    scores = centrality(sentences)
    # Stable sort on -score keeps the earlier of two equal sentences first.
    best = np.argsort(-scores, kind="stable")[:count]
    return sorted(int(i) for i in best)
