"""CSV files that people open in Excel or LibreOffice: no cell may run as a formula.

OWASP's advice for CSV injection: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
is prefixed with a single quote, which spreadsheets show as text. Only text cells are touched; numbers
(probabilities, ids read as numbers) stay numbers, so `-0.5` is still a number in a numeric column.
The README says which files get this treatment; the per-text data in the pipeline itself is never changed.
"""
from __future__ import annotations

import re

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# A plain signed number ("-1", "+0.5", "-2e3") is read as that number, not run as a formula: class names
# like -1/0/1 and such ids must reach a submission unchanged.
PLAIN_NUMBER = re.compile(r"[+-](\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value: object) -> object:
    """A text cell that a spreadsheet would evaluate gets a leading `'`; anything else is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (and column names) cannot run as formulas."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_cell)
    safe.columns = [neutralise_cell(str(c)) for c in safe.columns]
    return safe
