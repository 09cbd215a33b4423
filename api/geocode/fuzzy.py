"""Typo tolerance for names: near-homophones (a loose pinyin key) and character bigrams.

Both are inverted indexes built once; a query looks up its own key / bigrams and scores only the
names that share them, never the whole register.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz

PINYIN_QUALITY = 0.86  # a name that sounds the same (新萃居 for 新翠居)
BIGRAM_FLOOR = 0.6  # similarity below this is no match
MAX_POSTING = 3000  # bigrams shared by more names than this (花园, 小学…) are not looked up
# Southern Mandarin merges these; callers' typists do too.
_LOOSE = (
    (re.compile(r"^zh"), "z"),
    (re.compile(r"^ch"), "c"),
    (re.compile(r"^sh"), "s"),
    (re.compile(r"^l"), "n"),
    (re.compile(r"^f"), "h"),
    (re.compile(r"ng$"), "n"),
)


def _each_character(characters: str) -> Any:
    return list(characters)  # pypinyin keeps a non-Chinese run whole; one syllable a character


def loose_syllables(text: str) -> list[str]:
    """One loose syllable per character (a non-Chinese character stands for itself)."""
    syllables = []
    for syllable in lazy_pinyin(text, errors=_each_character):
        for pattern, replacement in _LOOSE:
            syllable = pattern.sub(replacement, syllable)
        syllables.append(syllable)
    return syllables


def loose_pinyin(name: str) -> str:
    return " ".join(loose_syllables(name))


def bigrams(name: str) -> set[str]:
    return {name[i : i + 2] for i in range(len(name) - 1)} if len(name) > 1 else {name}


@dataclass(frozen=True)
class NameHit:
    key: str
    quality: float  # 0..1: how sure we are the caller meant this name


class NameIndex:
    """Names of one kind (compound, road, poi) for fuzzy look-up."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(set(keys))
        self._sound: dict[str, list[int]] = {}
        self._postings: dict[str, list[int]] = {}
        self._lengths = sorted({len(key) for key in self.keys})
        for number, key in enumerate(self.keys):
            self._sound.setdefault(loose_pinyin(key), []).append(number)
            for bigram in bigrams(key):
                self._postings.setdefault(bigram, []).append(number)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(
        self, text: str, limit: int = 5, syllables: list[str] | None = None
    ) -> list[NameHit]:
        """Names that sound like `text` or share most of its characters, best first. With the
        text's `syllables`, names that sound like the START of the text count too (the name
        followed by the complaint: 锦秀小学门口…)."""
        if not text or not self.keys:
            return []
        hits: dict[str, float] = {}
        sounds = [loose_pinyin(text)]
        if syllables is not None:
            sounds += [" ".join(syllables[:length]) for length in self._lengths]
        for sound in sounds:
            for number in self._sound.get(sound, ()):
                hits[self.keys[number]] = PINYIN_QUALITY
        seen: set[int] = set()
        for bigram in bigrams(text):
            posting = self._postings.get(bigram, ())
            if len(posting) <= MAX_POSTING:
                seen.update(posting)
        for number in seen:
            key = self.keys[number]
            # Similarity to the name, or to the start of the caller's text when the name was
            # followed by more words (新萃居东门 → 新翠居).
            score = max(fuzz.ratio(text, key), fuzz.ratio(text[: len(key)], key)) / 100.0
            if score >= BIGRAM_FLOOR:
                quality = 0.55 + 0.3 * score  # one wrong character of three: 0.75
                hits[key] = max(hits.get(key, 0.0), min(quality, 0.84))
        ranked = sorted(hits.items(), key=lambda item: (-item[1], item[0]))
        # A name that sounds the same outranks names that only look alike.
        ranked = [item for item in ranked if item[1] >= ranked[0][1] - 0.05] if ranked else []
        return [NameHit(key, quality) for key, quality in ranked[:limit]]
