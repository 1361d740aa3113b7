"""Reading tables from CSV (optionally gzipped), Parquet or JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from coldbrew.errors import DataError

__all__ = ["read_table", "location"]


def location(frame: pd.DataFrame, position: int) -> str:
    """Human location of the row at ``position``: the file line for CSV/JSONL, else the row."""
    lines = frame.attrs.get("line_numbers")
    if lines is not None:
        return f"line {lines[position]}"
    if frame.attrs.get("format") == "csv":
        return f"line {position + 2}"  # line 1 is the header
    return f"row {position + 1}"

_CSV = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
_JSONL = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz")
_PARQUET = (".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table as strings-preserving DataFrame; the format follows the file name.

    All columns are read as strings (``dtype=str``) so that IDs like ``"00123"`` keep their
    leading zeros; callers convert the columns they need and report bad values by row.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file does not exist")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a CSV, Parquet or JSON Lines file")
    name = p.name.lower()
    try:
        if name.endswith(_PARQUET):
            frame = pd.read_parquet(p)
            nested = [c for c in frame.columns
                      if frame[c].map(lambda v: isinstance(v, (list, np.ndarray))).any()]
            out = frame.astype({c: "string" for c in frame.columns if c not in nested})
            out = out.astype(object).where(frame.notna(), None)
            for c in nested:
                out[c] = frame[c].map(
                    lambda v: [str(x) for x in v] if isinstance(v, (list, np.ndarray)) else None
                )
            return out
        if name.endswith(_JSONL):
            return _read_jsonl(p)
        if name.endswith(_CSV):
            sep = "\t" if ".tsv" in name else ","
            frame = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""], sep=sep,
                                skip_blank_lines=False)
            blank = frame.isna().all(axis=1).to_numpy()
            frame = frame.loc[~blank].reset_index(drop=True)
            frame.attrs["format"] = "csv"
            frame.attrs["line_numbers"] = (np.flatnonzero(~blank) + 2).tolist()
            return frame
    except DataError:
        raise
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{p}: cannot read: {str(exc).splitlines()[0]}") from None
    raise DataError(
        f"{p}: unknown file type; use .csv, .csv.gz, .parquet or .jsonl (optionally .gz)"
    )


def _jsonl_cell(v: object) -> object:
    # pandas fills keys absent from a row (and some nulls) with float NaN: that is "missing".
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v if isinstance(v, (list, dict)) else str(v)


def _read_jsonl(p: Path) -> pd.DataFrame:
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    rows: list[dict[str, object]] = []
    lines: list[int] = []
    with opener(p, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}: line {line_no}: malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{p}: line {line_no}: expected a JSON object")
            rows.append(obj)
            lines.append(line_no)
    frame = pd.DataFrame(rows)
    frame.attrs["line_numbers"] = lines
    # Keep types textual like the CSV path; nested values stay as they are.
    out = frame.map(_jsonl_cell)
    out.attrs["line_numbers"] = lines
    return out
