"""What the punctuation and capitals model reads and writes, shared by its training (training/punctuation.py)
and the worker's formatting stage (worker/formatting.py), so both hash a word the same way.

The model tags each spoken word with the punctuation that follows it and the case it is written in. A
word is read as a bag of hashed features (itself, its first and last letters, and whether the proper-noun
lexicon knows its stem) so a suffixed form the training text never held still looks like its relatives.
"""

from __future__ import annotations

import zlib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

PUNCTUATION = ("", ".", ",", "?")  # label index → what follows the word
CASES = ("lower", "capital", "upper")  # label index → how the word is written
FEATURES_PER_WORD = 12
HASH_BUCKETS = 1 << 16  # bucket 0 is padding

# Inflectional endings that take an apostrophe after a proper noun ("İstanbul'a", "Ali'nin"). Derivational
# ones ("İstanbullu", "Türkçe") do not, so they are not here. Every vowel-harmony form is listed.
_ENDING_STEMS = [
    "a e ı i u ü ya ye yı yi yu yü",  # dative, accusative
    "da de ta te dan den tan ten",  # locative, ablative
    "ın in un ün nın nin nun nün",  # genitive
    "la le yla yle",  # with
    "dır dir dur dür tır tir tur tür",  # copula
    "daki deki taki teki ndaki ndeki",
    "ı i u ü sı si su sü",  # possessive
    "ını ini unu ünü sını sini sunu sünü ına ine una üne sına sine suna süne",  # possessive + case
    "ında inde unda ünde sında sinde sunda sünde ından inden undan ünden sından sinden sundan sünden",
]
SUFFIXES: frozenset[str] = frozenset(" ".join(_ENDING_STEMS).split()) | frozenset(
    plural + rest
    for plural in ("lar", "ler")
    for rest in ("", "a", "e", "ı", "i", "da", "de", "dan", "den", "ın", "in", "la", "le", "dır", "dir")
)
MIN_STEM = 2


@dataclass(frozen=True)
class ProperNoun:
    written: str  # "İstanbul", "ABD", "McDonald"
    ambiguous: bool  # also an ordinary word ("umut", "deniz"): context decides


Lexicon = Mapping[str, ProperNoun]  # Turkish-lower-case stem → how it is written


def known_stem(word: str, known: Container[str], spellings: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(stem, ending) when `word` (lower case, apostrophes removed) is one of `known`, bare or with an
    inflectional ending; the longest stem wins. `spellings` maps a stem's form before an ending to the
    stem ("dörd" → "dört")."""
    if word in known:
        return word, ""
    for cut in range(len(word) - 1, MIN_STEM - 1, -1):
        stem = spellings.get(word[:cut], word[:cut]) if spellings else word[:cut]
        if word[cut:] in SUFFIXES and stem in known:
            return stem, word[cut:]
    return None


def proper_stem(word: str, lexicon: Lexicon) -> tuple[str, str] | None:
    """(stem, ending) when `word` is a known proper noun, bare or inflected."""
    return known_stem(word, lexicon)


_VOWELS = set("aeıioöuüâîû")
# Turkish words do not end in b, c, d, g (they harden) nor in most pairs of consonants: a cut leaving
# such an ending is not a stem ("aselsanla" is aselsan + la, not aselsanl + a).
_NOT_FINAL = set("bcdg")
_FINAL_PAIRS = frozenset(
    {"rk", "rt", "rs", "rp", "rç", "rz", "st", "şt", "nk", "nt", "nç", "ns", "lk", "lt", "lp", "ft", "ks", "ps"}
    | {"mp", "rm", "rn", "rl"}
)


def plausible_stem(stem: str) -> bool:
    if len(stem) < 3 or stem[-1] in _NOT_FINAL:
        return False
    if stem[-1] in _VOWELS or stem[-2] in _VOWELS:
        return True
    return stem[-2:] in _FINAL_PAIRS


def split_ending(word: str, lexicon: Lexicon) -> tuple[str, str] | None:
    """(stem, ending) of a word written with an apostrophe: a known proper noun's stem, else the longest
    plausible stem before an inflectional ending ("aselsanda" → aselsan, da)."""
    found = proper_stem(word, lexicon)
    if found is not None and found[1]:
        return found
    for cut in range(len(word) - 1, 2, -1):
        if word[cut:] in SUFFIXES and plausible_stem(word[:cut]):
            return word[:cut], word[cut:]
    return None


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) % (HASH_BUCKETS - 1) + 1


def word_features(word: str, lexicon: Lexicon) -> list[int]:
    """The hashed feature ids of one spoken word (lower case, apostrophes kept or not)."""
    bare = word.replace("'", "")
    names = [f"w:{bare}"]
    names += [f"p{n}:{bare[:n]}" for n in (1, 2, 3) if len(bare) > n]
    names += [f"s{n}:{bare[-n:]}" for n in (1, 2, 3, 4) if len(bare) > n]
    found = proper_stem(bare, lexicon)
    if found is not None:
        stem, ending = found
        names.append("prop?" if lexicon[stem].ambiguous else "prop")
        names.append(f"prop-end:{ending}")
    if "'" in word:
        names.append("apostrophe")
    if len(bare) <= 3:
        names.append(f"short:{bare}")
    return [_bucket(name) for name in names[:FEATURES_PER_WORD]]


def encode(words: Iterable[str], lexicon: Lexicon) -> np.ndarray:
    """[words, FEATURES_PER_WORD] int64 feature ids, zero-padded: the model's input without its batch axis."""
    rows = [word_features(word, lexicon) for word in words]
    out = np.zeros((len(rows), FEATURES_PER_WORD), dtype=np.int64)
    for index, row in enumerate(rows):
        out[index, : len(row)] = row
    return out


def read_lexicon(lines: Iterable[str]) -> dict[str, ProperNoun]:
    """`stem<TAB>written<TAB>0|1` lines (the formatter folder's propers.tsv)."""
    lexicon: dict[str, ProperNoun] = {}
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            lexicon[parts[0]] = ProperNoun(parts[1], parts[2] == "1")
    return lexicon


def windows(count: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, end, keep_from, keep_to) word windows over `count` words: each window keeps the labels of
    its middle, so every kept word has at least `overlap // 2` words of context on both sides (except at the
    ends of the text) and no sentence is judged from a window edge."""
    if count <= size:
        return [(0, count, 0, count)]
    step = size - overlap
    plans = []
    start = 0
    while True:
        end = min(start + size, count)
        keep_from = 0 if start == 0 else start + overlap // 2
        keep_to = count if end == count else end - overlap // 2
        plans.append((start, end, keep_from, keep_to))
        if end == count:
            return plans
        start += step
