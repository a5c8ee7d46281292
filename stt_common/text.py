"""Turkish letters and casing, shared by training (targets), export (what a vocabulary holds) and the
worker (transcripts in Turkish lower case whatever the model's vocabulary case)."""

from __future__ import annotations

TURKISH_LETTERS = "abcçdefgğhıijklmnoöprsştuüvyzqwxâîû'"


def turkish_lower(text: str) -> str:
    """Lower-case the Turkish way: I → ı and İ → i (Python's str.lower maps I → i and İ → i̇)."""
    return text.replace("I", "ı").replace("İ", "i").lower()
