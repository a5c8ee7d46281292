"""Turkish text normalisation for CTC targets: Turkish casing, no punctuation, optional numbers as words."""

from __future__ import annotations

import re
import unicodedata

from stt_common.text import TURKISH_LETTERS, turkish_lower

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_DIGITS = re.compile(r"\d+(?:[.,]\d+)?")
_NOT_ALLOWED = re.compile(f"[^{re.escape(TURKISH_LETTERS)} ]")
_SPACES = re.compile(r"\s+")


def numbers_to_words(text: str) -> str:
    from num2words import num2words

    def spell(match: re.Match[str]) -> str:
        token = match.group(0).replace(",", ".")
        try:
            value: float | int = float(token) if "." in token else int(token)
            return f" {num2words(value, lang='tr')} "
        except (ValueError, OverflowError, NotImplementedError):
            return " "

    return _DIGITS.sub(spell, text)


def normalize(text: str, *, spell_numbers: bool = False) -> str:
    """The form the model learns to write: lower-case Turkish letters and apostrophes, single spaces."""
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    if spell_numbers:
        text = numbers_to_words(text)
    text = turkish_lower(text)
    text = _NOT_ALLOWED.sub(" ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)  # quotes, not suffix apostrophes (Ankara'da)
    return _SPACES.sub(" ", text).strip()
