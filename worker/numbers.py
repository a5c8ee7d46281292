"""Spoken Turkish numbers → digits (inverse text normalisation), from tables.

Style (after the Turkish Language Association's spelling guide: numbers that need precision are written
in digits): a number of two or more words, or of ten and more, is written in digits; a one-word number
under ten ("iki kişi") stays a word in running text and is written in digits where precision is the point:
a clock time ("saat ikide" → "saat 2'de"), a percentage, money and measures ("beş lira" → "5 lira"; the
currency word stays), a date, a decimal. Ordinals are digits with a period ("üçüncü" → "3."). A suffix
after a number takes an apostrophe ("onda" → "10'da"). Four-digit numbers are not grouped (years read
"2026"); from five digits groups of three are separated by periods ("15.000").

Words that are numbers and ordinary words too ("bir" is also "a"; "onda", "yüzü", "bine" are also
"in him", "his face", "get on") become digits only inside a longer number or a precise context.
"""

from __future__ import annotations

from dataclasses import dataclass

from stt_common.punctuation import known_stem

UNITS = {"sıfır": 0, "bir": 1, "iki": 2, "üç": 3, "dört": 4, "beş": 5, "altı": 6, "yedi": 7, "sekiz": 8, "dokuz": 9}
TENS = {
    "on": 10,
    "yirmi": 20,
    "otuz": 30,
    "kırk": 40,
    "elli": 50,
    "altmış": 60,
    "yetmiş": 70,
    "seksen": 80,
    "doksan": 90,
}
HUNDRED, THOUSAND = "yüz", "bin"
SCALES = {"milyon": 10**6, "milyar": 10**9, "trilyon": 10**12}
NUMBER_WORDS = {**UNITS, **TENS, HUNDRED: 100, THOUSAND: 1000, **SCALES}
# A number word's form before a vowel-initial suffix, where it differs ("dört" + "e" → "dörde").
SOFTENED = {"dörd": "dört"}
ORDINALS = {
    "birinci": "bir", "ikinci": "iki", "üçüncü": "üç", "dördüncü": "dört", "beşinci": "beş",
    "altıncı": "altı", "yedinci": "yedi", "sekizinci": "sekiz", "dokuzuncu": "dokuz", "onuncu": "on",
    "yirminci": "yirmi", "otuzuncu": "otuz", "kırkıncı": "kırk", "ellinci": "elli", "altmışıncı": "altmış",
    "yetmişinci": "yetmiş", "sekseninci": "seksen", "doksanıncı": "doksan", "yüzüncü": "yüz",
    "bininci": "bin", "milyonuncu": "milyon", "milyarıncı": "milyar",
}  # fmt: skip
# Also ordinary words, alone or with some suffixes: digits only in a longer number or a precise context.
AMBIGUOUS = {"bir", "on", "yüz", "bin", "altı"}
MONTHS = {
    "ocak": "Ocak", "şubat": "Şubat", "mart": "Mart", "nisan": "Nisan", "mayıs": "Mayıs", "haziran": "Haziran",
    "temmuz": "Temmuz", "ağustos": "Ağustos", "eylül": "Eylül", "ekim": "Ekim", "kasım": "Kasım",
    "aralık": "Aralık",
}  # fmt: skip
MEASURES = {
    "lira", "kuruş", "dolar", "avro", "euro", "sterlin", "tl", "metre", "kilometre", "santimetre", "milimetre",
    "metrekare", "kilo", "kilogram", "gram", "ton", "litre", "mililitre", "derece", "kalori", "watt", "volt",
}  # fmt: skip
CLOCK, PERCENT, DECIMAL = "saat", "yüzde", "virgül"
# "buçuk" (half past) with its suffixes, and the suffix written after ".30" (read "otuz").
HALF_PAST = {"buçuk": "", "buçukta": "da", "buçuktan": "dan", "buçuğa": "a", "buçuğu": "u", "buçuğun": "un"}


@dataclass(frozen=True)
class Span:
    """words[start:end] are written `text`."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Number:
    value: int
    end: int  # index after its last word
    suffix: str  # the suffix on its last word ("" if none)
    ordinal: bool


def _split(word: str) -> tuple[str, str] | None:
    """(number word, suffix) for a number word bare or with a case suffix."""
    return known_stem(word.replace("'", ""), NUMBER_WORDS, SOFTENED)


def read_number(words: list[str], start: int) -> Number | None:
    """The longest well-formed cardinal or ordinal starting at words[start]."""
    total, group, slot, scale_used = 0, 0, 4, 10**15  # slot: 4 empty, 3 hundreds, 2 tens, 1 units
    index, suffix, ordinal, found = start, "", False, None
    while index < len(words):
        word = words[index]
        stem = ORDINALS.get(word)
        split = (stem, "") if stem else _split(word)
        if split is None:
            break
        token, suffix = split
        value = NUMBER_WORDS[token]
        if token in UNITS and slot > 1:
            group, slot = group + value, 1
        elif token in TENS and slot > 2:
            group, slot = group + value, 2
        elif token == HUNDRED and (slot == 4 or (slot == 1 and 2 <= group <= 9)):
            group, slot = max(group, 1) * 100, 3
        elif token == THOUSAND and scale_used > 1000 and group != 1:
            total, group, slot, scale_used = total + max(group, 1) * 1000, 0, 4, 1000
        elif token in SCALES and scale_used > value and group >= 1:
            total, group, slot, scale_used = total + group * value, 0, 4, value
        else:
            break
        index += 1
        ordinal = stem is not None
        found = Number(total + group, index, suffix, ordinal)
        if suffix or ordinal:
            break  # a suffix or an ordinal ends a number
    return found


def digits(value: int) -> str:
    text = str(value)
    if value < 10000:
        return text
    groups: list[str] = []
    while text:
        groups.insert(0, text[-3:])
        text = text[:-3]
    return ".".join(groups)


def with_suffix(text: str, suffix: str) -> str:
    return f"{text}'{suffix}" if suffix else text


def _month(word: str) -> tuple[str, str] | None:
    """(written month, suffix) for "mart", "martta", "mart'ta"."""
    found = known_stem(word.replace("'", ""), MONTHS)
    return (MONTHS[found[0]], found[1]) if found else None


def spans(words: list[str]) -> list[Span]:
    """Every number (with its context word where that is rewritten too: "yüzde elli" → "%50") in `words`."""
    out: list[Span] = []
    index = 0
    while index < len(words):
        span = _span_at(words, index)
        if span is None:
            index += 1
            continue
        out.append(span)
        index = span.end
    return out


def _span_at(words: list[str], index: int) -> Span | None:
    word = words[index]
    if word == PERCENT:
        number = read_number(words, index + 1)
        if number and not number.ordinal:
            return Span(index, number.end, with_suffix(f"%{digits(number.value)}", number.suffix))
        return None
    number = read_number(words, index)
    if number is None:
        return None
    previous = words[index - 1] if index else ""
    following = words[number.end] if number.end < len(words) else ""
    single = number.end - index == 1
    if number.ordinal:
        return Span(index, number.end, f"{digits(number.value)}.")
    if previous == CLOCK and number.value <= 24:
        return _clock(words, index, number)
    if following == DECIMAL and not number.suffix:
        decimal = _decimal(words, index, number)
        if decimal is not None:
            return decimal
    month = _month(following) if not number.suffix and following else None
    if month and 1 <= number.value <= 31:
        return _date(words, index, number, month)
    precise = not number.suffix and _is_measure(following)
    if single and not precise:
        bare = _split(word)
        stem = bare[0] if bare else word
        if number.value < 10 or (stem in AMBIGUOUS and (number.suffix or stem != "on")):
            return None
    return Span(index, number.end, with_suffix(digits(number.value), number.suffix))


def _decimal(words: list[str], index: int, whole: Number) -> Span | None:
    """ "üç virgül beş" → 3,5; "bir virgül sıfır beş" → 1,05 (a leading zero is a word of its own)."""
    position, zeros = whole.end + 1, 0
    while position < len(words) and words[position] == "sıfır":
        position, zeros = position + 1, zeros + 1
    fraction = read_number(words, position)
    if fraction is not None and not fraction.ordinal:
        text = f"{digits(whole.value)},{'0' * zeros}{fraction.value}"
        return Span(index, fraction.end, with_suffix(text, fraction.suffix))
    if zeros:
        return Span(index, position, f"{digits(whole.value)},{'0' * zeros}")
    return None


def _is_measure(word: str) -> bool:
    return known_stem(word.replace("'", ""), MEASURES) is not None


def _clock(words: list[str], index: int, hour: Number) -> Span:
    """ "saat on" → 10, "saat on buçukta" → 10.30'da, "saat on otuzda" → 10.30'da."""
    end, text, suffix = hour.end, str(hour.value), hour.suffix
    if not suffix and end < len(words):
        half = HALF_PAST.get(words[end].replace("'", ""))
        if half is not None:
            return Span(index, end + 1, with_suffix(f"{text}.30", half))
        minutes = read_number(words, end)
        if minutes and not minutes.ordinal and minutes.value < 60 and minutes.end - end <= 2:
            return Span(index, minutes.end, with_suffix(f"{text}.{minutes.value:02d}", minutes.suffix))
    return Span(index, end, with_suffix(text, suffix))


def _date(words: list[str], index: int, day: Number, month: tuple[str, str]) -> Span:
    """ "on beş mart" → 15 Mart, "on beş mart iki bin yirmi altıda" → 15 Mart 2026'da."""
    written, suffix = month
    end = day.end + 1
    text = f"{day.value} {written}"
    if not suffix:
        year = read_number(words, end)
        if year and not year.ordinal and 1000 <= year.value <= 2999:
            return Span(index, year.end, with_suffix(f"{text} {year.value}", year.suffix))
    return Span(index, end, with_suffix(text, suffix))
