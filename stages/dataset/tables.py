"""Reading users' CSV/TSV files: encodings, separators, columns, labels.

Real files come from Excel (CP932, BOMs, CRLF), scrapes and annotation tools. Everything here either
returns clean data plus one-line notes of what was done, or raises a `UserError` naming the file,
column or row and what to do.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from stages.common.errors import UserError

# Tried in order when data.encoding is 'auto'. utf-8-sig also reads plain UTF-8 (the BOM is optional).
AUTO_ENCODINGS = ("utf-8-sig", "cp932")
# charset-normalizer's guess is accepted only if it is an encoding Japanese files really come in;
# anything else (cp1252, koi8, ...) would "decode" garbage into a silently wrong run.
JAPANESE_GUESSES = {"euc_jp", "euc_jis_2004", "euc_jisx0213", "iso2022_jp", "iso2022_jp_2", "shift_jis",
                    "shift_jis_2004", "shift_jisx0213", "cp932", "utf_16", "utf_32"}


@dataclass
class Table:
    frame: pd.DataFrame  # every cell a str; empty cells are ""
    source: str
    notes: list[str] = field(default_factory=list)


def decode_bytes(raw: bytes, source: str, encoding: str = "auto") -> tuple[str, str]:
    """Return (text, encoding used). 'auto' tries UTF-8 (with or without BOM), then CP932, then a guess."""
    if encoding != "auto":
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise UserError(f"data.encoding: unknown codec {encoding!r}; use 'auto', 'utf-8', 'utf-8-sig' or 'cp932'") from None
        except UnicodeDecodeError as err:
            raise UserError(f"{source}: cannot decode byte offset {err.start} as {encoding} ({err.reason}); "
                            f"set data.encoding to the file's encoding or 'auto'") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export is UTF-16 with a BOM
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    first_error: Optional[UnicodeDecodeError] = None
    for candidate in AUTO_ENCODINGS:
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError as err:
            first_error = first_error or err
            continue
        if candidate == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf"):
            return text, "utf-8 with BOM"
        return text, "utf-8" if candidate == "utf-8-sig" else candidate
    from charset_normalizer import from_bytes

    best = from_bytes(raw, cp_isolation=sorted(JAPANESE_GUESSES)).best()
    if best is not None and best.encoding in JAPANESE_GUESSES:
        return str(best), best.encoding
    tried = ", ".join(AUTO_ENCODINGS) + ", and charset-normalizer's Japanese candidates (EUC-JP, ISO-2022-JP, UTF-16)"
    assert first_error is not None
    raise UserError(f"{source}: cannot decode byte offset {first_error.start} in any of: {tried}; "
                    f"re-save the file as UTF-8 or set data.encoding")


def sep_param(param: str) -> str:
    """The name under which the user set the separator: the command-line flag, or the params key."""
    return "--sep" if param.startswith("--") else "data.sep"


def guess_sep(path: Path, sep: str, param: str = "data.train_csv") -> str:
    if sep == "auto":
        return "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    delimiter = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
    # pandas would read a longer separator as a regular expression and quote or newline as nonsense.
    if len(delimiter) != 1 or delimiter in {'"', "\n", "\r"}:
        raise UserError(f"{sep_param(param)}: {sep!r} cannot separate fields: give exactly one character other "
                        f"than a quote or newline (',', ';', '|', 'tab'), or 'auto'")
    return delimiter


def check_path_param(value: str, param: str) -> None:
    """Paths in params.yaml are read as written (so DVC tracks the same file): `~` is not expanded."""
    if value.startswith("~"):
        raise UserError(f"{param}: {value!r} starts with '~', which is not expanded in params.yaml; write the path "
                        f"relative to the project or absolute")


def first_rows(text: str, delimiter: str) -> list[list[str]]:
    """The header and first data row as the csv module splits them (blank lines skipped, like pandas)."""
    rows = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            if row:
                rows.append(row)
            if len(rows) == 2:
                break
    except csv.Error:
        return []  # pandas reports the malformed file itself
    return rows


def check_first_row(text: str, delimiter: str, source: str, param: str) -> None:
    """A first data row with more fields than the header makes pandas use the first column as the row index,
    shifting every column silently; one with fewer leaves the last columns empty. Both mean the header and the
    rows disagree, usually because of the separator."""
    rows = first_rows(text, delimiter)
    if len(rows) < 2 or len(rows[0]) == len(rows[1]):
        return
    header, first = rows
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    if len(first) > len(header):
        what = (f"a text containing {shown} must be in double quotes, or the header is missing a column "
                f"name; or set {sep_param(param)}")
    else:
        what = f"check the separator ({sep_param(param)}) and that each row has a cell for every column"
    raise UserError(f"{source}: the header line has {len(header)} fields but data row 1 has {len(first)} "
                    f"(separator {shown}); {what}")


def read_table(path: str | Path, encoding: str = "auto", sep: str = "auto", param: str = "data.train_csv") -> Table:
    """Read a CSV/TSV into a frame of strings (no index, no NaN)."""
    if not param.startswith("--"):
        check_path_param(str(path), param)
    path = Path(path)
    source = str(path)
    delimiter = guess_sep(path, sep, param)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        raise UserError(f"{source}: file {what}; set {param} in params.yaml to an existing CSV/TSV file")
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError(f"{source}: file is empty; it needs a header line and at least one row")
    text, used = decode_bytes(raw, source, encoding)
    notes = []
    if used not in ("utf-8", encoding):
        notes.append(f"{source}: decoded as {used}")
    if "\r\n" in text:
        notes.append(f"{source}: CRLF line endings")
    check_first_row(text, delimiter, source, param)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=True, engine="c")
    except pd.errors.EmptyDataError:
        raise UserError(f"{source}: no columns found; the file needs a header line") from None
    except pd.errors.ParserError as err:
        raise UserError(f"{source}: not a valid {'TSV' if delimiter == chr(9) else 'CSV'} file ({str(err).strip()}); "
                        f"check quoting or set data.sep") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if frame.empty:
        raise UserError(f"{source}: has a header but no data rows")
    return Table(frame.reset_index(drop=True), source, notes)


def require_column(table: Table, column: str, param: str) -> None:
    if column not in table.frame.columns:
        existing = ", ".join(repr(c) for c in table.frame.columns)
        raise UserError(f"{table.source}: column {column!r} not found (set {param}); columns are: {existing}")


def _row(index: int) -> int:
    """1-based data row number as a user counts it in a spreadsheet below the header."""
    return index + 1


def _as_index(label: str) -> Optional[int]:
    try:
        number = float(label)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def resolve_labels(labels: pd.Series, label_names: Optional[list[str]], source: str, column: str) -> tuple[pd.Series, list[str]]:
    """Map raw label cells to class names. Returns (names per row, ordered class names)."""
    labels = labels.astype(str).str.strip()
    empty = labels.eq("")
    if empty.any():
        row = _row(int(empty.idxmax()))
        raise UserError(f"{source}: empty label in column {column!r} on row {row} "
                        f"({int(empty.sum())} empty in all); fill it in or remove the row")
    distinct = sorted(labels.unique())
    # Full-width / half-width (or other NFKC-equivalent) spellings of one label are a data error
    # that a silent merge would hide.
    by_form: dict[str, list[str]] = {}
    for label in distinct:
        by_form.setdefault(unicodedata.normalize("NFKC", label), []).append(label)
    variants = [forms for forms in by_form.values() if len(forms) > 1]
    if variants:
        listed = "; ".join(" vs ".join(repr(f) for f in forms) for forms in variants)
        raise UserError(f"{source}: column {column!r} has width/Unicode variants of the same label: {listed}; "
                        f"make them identical in the file")
    if label_names is None:
        indices = [_as_index(label) for label in distinct]
        if all(i is not None for i in indices):
            distinct = [label for _, label in sorted(zip(indices, distinct))]
        return labels, distinct
    names = list(label_names)
    known = set(names)
    if all(label in known for label in distinct):
        return labels, names
    indices = {label: _as_index(label) for label in distinct}
    if all(i is not None and 0 <= i < len(names) for i in indices.values()) and not (set(distinct) & known):
        return labels.map(lambda label: names[indices[label]]), names
    unknown = [label for label in distinct if label not in known]
    bad = labels.isin(unknown)
    row = _row(int(bad.idxmax()))
    raise UserError(f"{source}: label {unknown[0]!r} on row {row} is not in data.label_names {names}; "
                    f"add it to data.label_names or fix the row")
