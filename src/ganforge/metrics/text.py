"""Metrics of generated text against a text file's held-out tenth (:class:`~ganforge.data.text.TextData`).

* ``js_1`` … ``js_4`` — the Jensen–Shannon divergence (bits, in [0, 1]) between the distribution of character
  n-grams inside the samples and that of the held-out text, as Gulrajani et al. 2017 report it (their
  ``language_helpers.NgramLanguageModel.js_with``): n-grams are counted within each sample, never across two.
* ``in_vocab`` — the share of the samples' words found in the training text's words (lower-cased runs of
  letters and apostrophes; each sample's first and last word are left out, being usually cut by the window).
* ``novelty`` — the share of samples that do not occur verbatim in the training text.

The floor (:func:`text_floor`) scores windows of the training text the same way: what a generator that had
learnt the training text perfectly would get at that sample count (the two parts of a text differ: in tiny
Shakespeare, 10,000 training windows read 0.19 in 4-gram JS, while windows drawn from the held-out tenth
itself read 0.015, a bound no generator of the training text can reach).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Dict, Iterable, List

import torch

WORD = re.compile(r"[a-z']+")
ORDERS = (1, 2, 3, 4)


def ngrams(texts: Iterable[str], n: int) -> Counter:
    """Counts of the character n-grams inside each text."""
    out: Counter = Counter()
    for t in texts:
        out.update(t[i:i + n] for i in range(len(t) - n + 1))
    return out


def js_divergence(p: Counter, q: Counter) -> float:
    """JS(P, Q) in bits of two count tables (each normalised to a distribution); 0 when equal, 1 when disjoint."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return float("nan")
    total = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0) / sp, q.get(k, 0) / sq
        m = (a + b) / 2
        if a:
            total += a * math.log2(a / m)
        if b:
            total += b * math.log2(b / m)
    return total / 2


def inner_words(text: str) -> List[str]:
    """The words of a sample but its first and last (which the window usually cuts)."""
    return WORD.findall(text.lower())[1:-1]


def vocabulary(text: str) -> set:
    return set(WORD.findall(text.lower()))


class TextReference:
    """What samples are scored against: the held-out text's n-gram counts, the training text and its words."""

    def __init__(self, train: str, held: str) -> None:
        self.train, self.words = train, vocabulary(train)
        self.counts = {n: ngrams([held], n) for n in ORDERS}
        self.held = held

    def score(self, samples: List[str]) -> Dict[str, float]:
        out = {f"js_{n}": round(js_divergence(ngrams(samples, n), self.counts[n]), 4) for n in ORDERS}
        words = [w for s in samples for w in inner_words(s)]
        out["in_vocab"] = round(sum(w in self.words for w in words) / len(words), 4) if words else float("nan")
        out["novelty"] = round(sum(s not in self.train for s in samples) / len(samples), 4)
        return out


def windows(text: str, n: int, length: int, seed: int = 0) -> List[str]:
    """``n`` random windows of ``text`` (seeded)."""
    starts = torch.randint(len(text) - length + 1, (n,), generator=torch.Generator().manual_seed(seed))
    return [text[s:s + length] for s in starts.tolist()]


def text_reference(data) -> TextReference:
    return TextReference(data.train_text, data.held)


def text_floor(data, n: int, seed: int = 0) -> Dict[str, float]:
    """``n`` windows of the training text scored against the held-out tenth: what a generator that had learnt
    the training text perfectly would get (novelty 0: they are copies)."""
    return text_reference(data).score(windows(data.train_text, n, data.seq_len, seed))
