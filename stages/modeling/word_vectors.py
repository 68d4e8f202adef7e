"""chiVe word vectors (from the ja-ginza wheel) as a starting point for the builtin BERT's word embeddings.

The builtin model learns Japanese only from the user's few thousand texts; chiVe (Works Applications, Apache-2.0,
word2vec on the NWJC web corpus) knows the words of a far larger corpus. The ja-ginza 5.3.0 wheel (MIT, Megagon
Labs) ships a pruned copy: 20,000 300-d vectors and 480,443 words, each word pointing at its own row or, when
pruned, at the row of its nearest kept neighbour. The wheel is installed with `pip install --no-deps
ja-ginza==5.3.0` (its dependencies, spaCy and SudachiPy, are not needed) and nothing of it is imported: its files
are read directly, in spaCy's on-disk formats:
- vocab/vectors: a NumPy .npy file, float32, (rows, 300);
- vocab/key2row: a msgpack map, 64-bit word key -> row;
- a word's key is spaCy's `hash_string`: MurmurHash64A of its UTF-8 bytes with seed 1 (`word_key` below).
chiVe's words are SudachiPy's normalised forms; our tokens are MeCab (unidic-lite) surfaces after NFKC, so a word
is looked up as its surface, then lower-cased, then unidic's base form and lemma (`word_forms`).
"""
from __future__ import annotations

import importlib.util
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from stages.common.errors import UserError

CHIVE_PACKAGE = "ja_ginza"
CHIVE_VOCAB = Path("ja_ginza-5.3.0") / "vocab"
INSTALL_HINT = "pip install --no-deps ja-ginza==5.3.0"
SPACY_HASH_SEED = 1

_M = 0xC6A4A7935BD1E995
_MASK = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int) -> int:
    """Austin Appleby's MurmurHash64A as an unsigned 64-bit int (what spaCy's murmurhash `hash64` computes)."""
    length = len(data)
    h = (seed ^ (length * _M)) & _MASK
    blocks = length // 8
    for i in range(blocks):
        k = int.from_bytes(data[8 * i:8 * i + 8], "little")
        k = (k * _M) & _MASK
        k ^= k >> 47
        k = (k * _M) & _MASK
        h ^= k
        h = (h * _M) & _MASK
    if length & 7:
        h ^= int.from_bytes(data[8 * blocks:], "little")
        h = (h * _M) & _MASK
    h ^= h >> 47
    h = (h * _M) & _MASK
    h ^= h >> 47
    return h


def word_key(word: str) -> int:
    """spaCy's key of `word` (strings.hash_string)."""
    return murmurhash64a(word.encode("utf-8"), SPACY_HASH_SEED)


def chive_vocab_dir() -> Path:
    """The installed wheel's vocab folder, found without importing ja_ginza (whose import needs spaCy)."""
    spec = importlib.util.find_spec(CHIVE_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        vocab = Path(folder) / CHIVE_VOCAB
        if (vocab / "vectors").is_file() and (vocab / "key2row").is_file():
            return vocab
    found = f" (found {CHIVE_PACKAGE} at {folders[0]} without {CHIVE_VOCAB}/vectors: another version?)" if folders else ""
    raise UserError(f"model.builtin.word_vectors: chive needs the chiVe vectors of the ja-ginza 5.3.0 wheel, which "
                    f"is not installed{found}; run `{INSTALL_HINT}` in this environment, or set "
                    f"model.builtin.word_vectors: none")


@dataclass(frozen=True)
class WordVectors:
    vectors: np.ndarray          # (rows, dim) float32
    key2row: dict[int, int]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, word: str) -> Optional[int]:
        return self.key2row.get(word_key(word))

    def vector(self, word: str) -> Optional[np.ndarray]:
        row = self.row(word)
        return None if row is None else self.vectors[row]


def load_chive(vocab_dir: Optional[Path] = None) -> WordVectors:
    import msgpack

    vocab_dir = vocab_dir or chive_vocab_dir()
    vectors = np.load(vocab_dir / "vectors", allow_pickle=False)
    key2row = msgpack.unpackb((vocab_dir / "key2row").read_bytes(), strict_map_key=False)
    return WordVectors(np.asarray(vectors, dtype=np.float32), key2row)


# unidic(-lite) feature fields: 7 = lemma ("コンピューター-computer" for loanwords), 10 = orthBase (base form as written).
LEMMA, ORTH_BASE = 7, 10


class WordForms:
    """The forms under which chiVe may know a MeCab word, best first: surface, lower case, base form, lemma.

    Each word is analysed on its own (not in its sentence): a vocabulary entry has no sentence, and a word that
    MeCab splits when alone keeps only its surface forms."""

    def __init__(self) -> None:
        import fugashi

        from stages.dataset.japanese import mecab_options

        self._tagger = fugashi.GenericTagger(mecab_options())

    def __call__(self, word: str) -> list[str]:
        word = unicodedata.normalize("NFKC", word)
        forms = [word, word.lower()]
        nodes = self._tagger(word)
        if len(nodes) == 1 and len(nodes[0].feature) > ORTH_BASE:
            feature = nodes[0].feature
            forms += [feature[ORTH_BASE], feature[LEMMA].split("-", 1)[0]]
        return list(dict.fromkeys(f for f in forms if f and f != "*"))


def lookup_words(words: Iterable[str], vectors: WordVectors, forms: Optional[WordForms] = None) -> dict[str, int]:
    """word -> chiVe row, for the words chiVe knows in one of their forms."""
    forms = forms or WordForms()
    found: dict[str, int] = {}
    for word in words:
        for form in forms(word):
            row = vectors.row(form)
            if row is not None:
                found[word] = row
                break
    return found


def piece_vectors(vocab: Sequence[str], corpus_words: Iterable[str], vectors: WordVectors,
                  special: Iterable[str] = ()) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Vocabulary id -> 300-d vector for the WordPiece entries chiVe tells something about.

    A whole-word piece chiVe knows gets its vector. Any other piece (a "##" continuation, or a word-initial piece
    chiVe lacks) gets the mean vector of the known corpus words that contain it in that position (after the
    first character for "##x", at the start otherwise): "##庁" is what 都庁, 県庁 and 道庁 have in common.
    Returns the vectors and counts (direct, from_words, none)."""
    special = set(special)
    pieces = {i: p for i, p in enumerate(vocab) if p not in special}
    forms = WordForms()
    whole = [p for p in pieces.values() if not p.startswith("##")]
    direct = lookup_words(whole, vectors, forms)
    distinct = set(corpus_words) | set(direct)
    # Sorted: a set's order changes with the process's hash seed, and so would the float sums below.
    known = lookup_words(sorted(distinct - set(direct)), vectors, forms) | direct
    wanted_inner = {p[2:] for p in pieces.values() if p.startswith("##")}
    wanted_start = {p for p in whole if p not in direct}
    longest = max((len(p) for p in wanted_inner | wanted_start), default=0)
    sums: dict[tuple[bool, str], np.ndarray] = {}
    counts: dict[tuple[bool, str], int] = {}
    for word, row in sorted(known.items()):
        vector = vectors.vectors[row]
        for start in range(len(word)):
            for end in range(start + 1, min(len(word), start + longest) + 1):
                sub = word[start:end]
                key = (start > 0, sub)
                if (sub in wanted_inner) if start else (sub in wanted_start):
                    sums[key] = sums.get(key, 0) + vector
                    counts[key] = counts.get(key, 0) + 1
    result: dict[int, np.ndarray] = {}
    stats = {"direct": 0, "from_words": 0, "none": 0}
    for index, piece in pieces.items():
        inner = piece.startswith("##")
        if not inner and piece in direct:
            result[index] = vectors.vectors[direct[piece]]
            stats["direct"] += 1
            continue
        key = (True, piece[2:]) if inner else (False, piece)
        if key in counts:
            result[index] = sums[key] / counts[key]
            stats["from_words"] += 1
        else:
            stats["none"] += 1
    return result, stats


def projection(vectors: WordVectors, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, matrix) taking a chiVe vector to `width` dims: the top principal axes of all chiVe rows (fixed by
    the data); beyond 300 dims, a seeded random orthonormal map (every direction of chiVe kept, none favoured)."""
    data = vectors.vectors.astype(np.float64)
    mean = data.mean(axis=0)
    if width <= vectors.dim:
        _, _, axes = np.linalg.svd(data - mean, full_matrices=False)
        # Fix each axis's sign (SVD leaves it free): the largest coordinate positive.
        axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
        return mean, axes[:width].T
    random = np.random.default_rng(seed).standard_normal((width, vectors.dim))
    q, _ = np.linalg.qr(random)
    return mean, q.T


def embedding_rows(vocab: Sequence[str], corpus_words: Iterable[str], vectors: WordVectors, width: int, std: float,
                   seed: int, special: Iterable[str] = ()) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Vocabulary id -> initial embedding row (`width` dims, overall std `std`, like the random init it replaces)."""
    found, stats = piece_vectors(vocab, corpus_words, vectors, special)
    if not found:
        return {}, stats
    mean, matrix = projection(vectors, width, seed)
    ids = sorted(found)
    projected = (np.stack([found[i] for i in ids]) - mean) @ matrix
    projected *= std / max(projected.std(), 1e-12)
    return {i: projected[n].astype(np.float32) for n, i in enumerate(ids)}, stats


def coverage(words: Sequence[Sequence[str]], vectors: WordVectors) -> dict[str, float]:
    """Share of MeCab word tokens (and of distinct words) that chiVe knows in one of their forms."""
    counts: dict[str, int] = {}
    for sentence in words:
        for word in sentence:
            counts[word] = counts.get(word, 0) + 1
    known = lookup_words(counts, vectors)
    tokens = sum(counts.values())
    return {"token_coverage": sum(counts[w] for w in known) / max(tokens, 1),
            "type_coverage": len(known) / max(len(counts), 1),
            "surface_type_coverage": sum(vectors.row(w) is not None for w in counts) / max(len(counts), 1)}
