"""MeCab (fugashi + unidic-lite), set up once for every word segmentation in the project, and the
preparation that every text gets before MeCab or a tokenizer reads it.

What MeCab does with hostile text (fugashi + unidic-lite, measured; tests/test_hostile_inputs.py):
- a NUL character ends the text for MeCab: everything after it is silently dropped, so two texts that
  differ only after a NUL got the same tokens and the same prediction;
- a text of about a million characters or more (1,000,000 of 'あ', 1,500,000 of ordinary prose,
  2,000,000 ASCII letters) kills the whole process with a segmentation fault (exit code 139);
- a lone surrogate (what undecodable bytes in command-line arguments become) raises UnicodeEncodeError;
- the other C0 control characters (U+0001-U+001F, U+007F) and U+0085/U+2028/U+2029 come back as words of
  their own or as whitespace: nothing is lost, so they are left alone.

`prepare_texts` replaces NUL with a space, lone surrogates with U+FFFD, and cuts texts longer than
`MAX_CHARS` (measured after NFKC, which the tokenizer applies and which can make a text up to 18 times
longer). Models read at most a few hundred tokens (tokenize.max_length), so the cut never changes the ids a
model sees, only how long MeCab works. Every change is counted so the stage can say what it did; the split
stage's dataset keeps the user's text unchanged.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable

MECAB_KWARGS = {"mecab_dic": "unidic_lite"}
# Texts are cut to this many characters (after NFKC) before MeCab: a tenth of the length at which MeCab
# crashed, and far more than tokenize.max_length tokens need. A 100,000-character run of one unknown
# character class (e.g. only digits) still takes MeCab about 20 s; ordinary prose about 0.2 s.
MAX_CHARS = 100_000
# NFKC expands a character into at most 18 (U+FDFA); shorter texts cannot exceed MAX_CHARS after it.
NFKC_MAX_EXPANSION = 18
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
COUNT_KEYS = ("texts_with_nul", "texts_with_lone_surrogates", "texts_cut")


def word_tokenizer():
    """MeCab with unidic-lite exactly as BertJapaneseTokenizer runs it (NFKC first, surfaces out)."""
    from transformers.models.bert_japanese.tokenization_bert_japanese import (
        MecabTokenizer,
    )

    return MecabTokenizer(do_lower_case=False, normalize_text=True, **MECAB_KWARGS)


def normalized_length(text: str) -> int:
    if len(text) * NFKC_MAX_EXPANSION <= MAX_CHARS:
        return len(text)  # cannot matter: even fully expanded it stays under the cap
    return len(unicodedata.normalize("NFKC", text))


def cut(text: str, max_chars: int = MAX_CHARS) -> str:
    """The longest prefix (to within a few characters) whose NFKC form has at most `max_chars` characters."""
    text = text[:max_chars]
    while (length := normalized_length(text)) > max_chars:
        text = text[: max(1, len(text) * max_chars // length) - 1]
    return text


def prepare_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """`text` as MeCab can read all of it: cut to `max_chars`, NUL -> space, lone surrogate -> U+FFFD."""
    if len(text) > max_chars or normalized_length(text) > max_chars:
        text = cut(text, max_chars)
    if "\0" in text:
        text = text.replace("\0", " ")
    return LONE_SURROGATE.sub("\ufffd", text)


def prepare_texts(texts: Iterable[str], max_chars: int = MAX_CHARS) -> tuple[list[str], dict[str, int]]:
    """(prepared texts, how many texts had each change): keys texts_with_nul, texts_with_lone_surrogates,
    texts_cut. Texts that need nothing are returned as they are."""
    prepared: list[str] = []
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for text in texts:
        counts["texts_with_nul"] += "\0" in text
        counts["texts_with_lone_surrogates"] += LONE_SURROGATE.search(text) is not None
        ready = prepare_text(text, max_chars)
        counts["texts_cut"] += len(ready) < len(text)
        prepared.append(ready)
    return prepared, counts


def preparation_notes(counts: dict[str, int], where: str, max_chars: int = MAX_CHARS) -> list[str]:
    """One line per kind of change, for `note:` output; none when nothing was changed."""
    notes = []
    if counts.get("texts_with_nul"):
        notes.append(f"{where}: replaced NUL characters with spaces in {counts['texts_with_nul']} texts "
                     f"(MeCab stops reading a text at a NUL)")
    if counts.get("texts_with_lone_surrogates"):
        notes.append(f"{where}: replaced invalid characters (lone surrogates) with U+FFFD in "
                     f"{counts['texts_with_lone_surrogates']} texts")
    if counts.get("texts_cut"):
        notes.append(f"{where}: cut {counts['texts_cut']} texts longer than {max_chars:,} characters to their "
                     f"first {max_chars:,} before tokenizing (MeCab crashes on texts of about a million; "
                     f"only the first tokens are used anyway)")
    return notes


def segment(texts: Iterable[str]) -> list[list[str]]:
    """MeCab words of each text, after `prepare_text`."""
    mecab = word_tokenizer()
    return [mecab.tokenize(prepare_text(text)) for text in texts]


def mecab_options() -> str:
    """The command-line options BertJapaneseTokenizer gives MeCab for MECAB_KWARGS (the unidic-lite dictionary)."""
    import unidic_lite

    return f'-d "{unidic_lite.DICDIR}" -r "{os.path.join(unidic_lite.DICDIR, "mecabrc")}"'


def mecab_words(texts: Iterable[str]) -> list[str]:
    """Space-joined MeCab words of each text (after `prepare_text` and NFKC), for word n-gram features: the
    same words as `segment`, from MeCab's own space-joined output (about 4 times faster than word objects)."""
    import fugashi

    tagger = fugashi.GenericTagger(mecab_options() + " -Owakati")
    return [tagger.parse(unicodedata.normalize("NFKC", prepare_text(text))).strip() for text in texts]
