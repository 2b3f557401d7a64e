"""The lab's one CSV reader and writer: training logs (``training.runs.CSVLog``, drawn by
``viz.plot_training_curves``), ``experiments.csv`` and the course's ``test_gt.csv``.

Reading: UTF-8 text, blank lines skipped; a binary or malformed file is one ValueError naming it.
Writing: text with ``\\n`` line ends, one header row, then one row per dict; the caller decides
where it goes (``runtime.atomic_write_text`` replaces a file whole, ``append_csv`` adds rows).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable


def read_csv_rows(path: str | os.PathLike) -> list[list[str]]:
    """Every non-empty row of a CSV file, the header row first."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.reader(f) if row]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a CSV text file ({err})") from None


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str | None]]]:
    """The header and one dict per row, keyed by the header (a short row's missing cells are None,
    as with ``csv.DictReader``); an empty file is ``([], [])``."""
    rows = read_csv_rows(path)
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row + [None] * (len(header) - len(row)))) for row in body]


def count_csv_rows(path: str | os.PathLike) -> int:
    """The data rows (non-blank lines after the header) of a one-line-per-row CSV, without parsing
    its values: a count before any work, e.g. of a 750 x 12288 ``test_gt.csv``."""
    with open(path, "rb") as lines:
        return max(sum(1 for line in lines if line.strip()) - 1, 0)


def csv_text(fields: Iterable[str], rows: Iterable[dict], header: bool = True) -> str:
    """``rows`` (dicts with exactly the keys ``fields``, missing ones empty) as CSV text."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def append_csv(path: str | os.PathLike, fields: Iterable[str], rows: Iterable[dict]) -> None:
    """Add ``rows`` at the end of a CSV file that has its header already."""
    with open(Path(path), "a", encoding="utf-8", newline="") as f:
        f.write(csv_text(fields, rows, header=False))
