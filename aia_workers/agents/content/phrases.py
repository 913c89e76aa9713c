"""Key phrases: TF-IDF weighted n-grams that neither start nor end with a stop word."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

__all__ = ["key_phrases"]

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*|\d+(?:[.,]\d+)*|[^\sA-Za-z0-9]")
_MAX_WORDS = 3


def _candidates(sentence: str) -> Iterator[str]:
    # As in RAKE, stop words, numbers and punctuation split the text into runs of
    # content words; every 1- to 3-word span of a run is a candidate phrase.
    run: list[str] = []
    for token in [*_TOKEN.findall(sentence.lower()), "."]:
        word = token.strip("'-")
        if word and word[0].isalpha() and word not in ENGLISH_STOP_WORDS and len(word) > 1:
            run.append(word)
            continue
        for size in range(1, _MAX_WORDS + 1):
            for start in range(len(run) - size + 1):
                yield " ".join(run[start : start + size])
        run = []


def key_phrases(sentences: list[str], count: int) -> list[str]:
    """The ``count`` phrases of ``sentences`` with the highest summed TF-IDF weight.

    Sentences are the documents, so a phrase scores by how often it occurs and
    how few sentences share it. Longer phrases weigh more (by the square root
    of their word count) but count only when they occur more than once; a
    phrase inside one already chosen ("solar" after "solar farm") is skipped.
    Ties go to the phrase seen first.
    """
    if count == 0 or not sentences:
        return []
    vectorizer = TfidfVectorizer(analyzer=lambda s: list(_candidates(s)), norm=None)
    try:
        matrix = vectorizer.fit_transform(sentences)
    except ValueError:  # no candidate phrase at all
        return []
    names = vectorizer.get_feature_names_out()
    totals = matrix.sum(axis=0).A1
    first_seen: dict[str, int] = {}
    occurrences: Counter[str] = Counter()
    for position, phrase in enumerate(p for s in sentences for p in _candidates(s)):
        first_seen.setdefault(phrase, position)
        occurrences[phrase] += 1
    scored = sorted(
        (
            -float(total) * math.sqrt(len(str(name).split())),
            first_seen[str(name)],
            str(name),
        )
        for name, total in zip(names, totals, strict=True)
        # A run of words said once is a fragment of a sentence, not a phrase of the text.
        if occurrences[str(name)] > 1 or " " not in str(name)
    )
    chosen: list[str] = []
    for _, _, phrase in scored:
        words = f" {phrase} "
        if any(words in f" {c} " or f" {c} " in words for c in chosen):
            continue
        chosen.append(phrase)
        if len(chosen) == count:
            break
    return chosen
