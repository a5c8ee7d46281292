"""The Turkish character vocabulary for CTC: letters, the word delimiter and the special tokens."""

from __future__ import annotations

from stt_common.text import TURKISH_LETTERS

BLANK = "<pad>"
UNK = "<unk>"
WORD_DELIMITER = "|"


def turkish_vocab() -> dict[str, int]:
    """Blank first (id 0, the CTC blank), then the delimiter, the letters and <unk>."""
    tokens = [BLANK, WORD_DELIMITER, *TURKISH_LETTERS, UNK]
    return {token: index for index, token in enumerate(tokens)}
