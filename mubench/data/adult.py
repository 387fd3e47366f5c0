"""UCI Adult ("Census Income"; Becker & Kohavi 1996, from the 1994 US census) read as published.

Two comma-separated files without a header: `adult.data` (32,561 rows, the training file) and
`adult.test` (16,281 rows). Values are separated by ", "; missing values are written `?` (in
workclass, occupation and native-country only). Quirks kept as published and handled here:
`adult.test` starts with the line `|1x3 Cross validator`, its income labels end with a full stop
(`<=50K.`, `>50K.`), and both files end with a blank line.

The parser is strict, because a silently shifted or dropped row changes every number computed on
the data: a row with the wrong number of values, an empty value, a non-numeric value in a numeric
column, an income label not of the file's form, a sex or race outside the closed lists of
`adult.names`, or a blank line before the end is refused with a CorruptDataError naming the file
and the 1-based line number. Missing values (`?`) are kept as they are; what they become is the
task's choice (mubench/tasks/adult.py).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mubench.data.files import DataFile, FileForm, locate
from mubench.errors import CorruptDataError

# Column names as in adult.names, in file order.
COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income")
NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
MISSING = "?"
# The closed lists of adult.names; a value's position is its integer code in Pool.attributes.
SEX_VALUES = ("Female", "Male")
RACE_VALUES = ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White")
LABELS = ("<=50K", ">50K")  # label 0, label 1 (income above 50K)

_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/{}"


@dataclass(frozen=True)
class AdultFile:
    """One published file: its pinned form, the first line to skip (if any) and the label suffix."""

    form: FileForm
    first_line: str | None = None
    label_suffix: str = ""

    @property
    def labels(self) -> dict[str, int]:
        return {label + self.label_suffix: code for code, label in enumerate(LABELS)}


@dataclass(frozen=True)
class AdultSource:
    """Where the two files are (a mirror folder) and how each is published."""

    folder: str
    train: AdultFile
    test: AdultFile

    def data_file(self, part: str) -> DataFile:
        form = getattr(self, part).form
        return DataFile(self.folder, (form,), _URL.format(form.name))

    def data_files(self) -> list[DataFile]:
        return [self.data_file("train"), self.data_file("test")]

    @property
    def pinned(self) -> dict[str, str]:
        return {self.train.form.name: self.train.form.sha256, self.test.form.name: self.test.form.sha256}


OFFICIAL = AdultSource(
    "adult",
    train=AdultFile(FileForm("adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d")),
    test=AdultFile(FileForm("adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
                   first_line="|1x3 Cross validator", label_suffix="."),
)


def load_adult(source: AdultSource = OFFICIAL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and test tables, each file located (or downloaded) and checked against its pin."""
    tables = []
    for part in ("train", "test"):
        path, _ = locate(source.data_file(part))
        tables.append(read_adult_file(path, getattr(source, part)))
    return tables[0], tables[1]


def read_adult_file(path: Path, published: AdultFile) -> pd.DataFrame:
    """Parse one file: numeric columns as float64, the others as strings (`?` kept), and `income`
    as the label 0 (<=50K) or 1 (>50K). Refuses malformed rows naming `path` and the line."""
    skip = 0
    if published.first_line is not None:
        _check_first_line(path, published.first_line)
        skip = 1
    try:
        table = pd.read_csv(path, header=None, names=list(COLUMNS), dtype=str, keep_default_na=False,
                            skipinitialspace=True, skip_blank_lines=False, skiprows=skip)
    except pd.errors.ParserError as exc:  # more values than columns; pandas names the file line
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f"line {found.group(1)}: {found.group(2)} values" if found else str(exc)
        raise CorruptDataError(f"{path}, {where}, expected {len(COLUMNS)}") from None
    except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CorruptDataError(f"{path}: not a readable Adult file ({exc})") from None
    table = table.apply(lambda column: column.str.strip())
    table.index = pd.RangeIndex(skip + 1, skip + 1 + len(table), name="line")  # 1-based file lines
    table = _drop_trailing_blank_lines(path, table)
    _check_complete_rows(path, table)
    for column in NUMERIC:
        table[column] = _numbers(path, table[column])
    for column, values in (("sex", SEX_VALUES), ("race", RACE_VALUES)):
        _check_values(path, table[column], dict.fromkeys(values))
    table["income"] = _check_values(path, table["income"], published.labels)
    return table.reset_index(drop=True)


def _check_first_line(path: Path, expected: str) -> None:
    with open(path, encoding="ascii", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n")
    if first != expected:
        raise CorruptDataError(f"{path}, line 1: expected the published first line {expected!r}, found {first!r}")


def _drop_trailing_blank_lines(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    blank = (table == "").all(axis=1).to_numpy()
    content = np.flatnonzero(~blank)
    if not len(content):
        raise CorruptDataError(f"{path}: no data rows")
    inner_blank = np.flatnonzero(blank[: content[-1]])
    if len(inner_blank):
        raise CorruptDataError(f"{path}, line {table.index[inner_blank[0]]}: blank line before the end of the data")
    return table.iloc[: content[-1] + 1]


def _check_complete_rows(path: Path, table: pd.DataFrame) -> None:
    """Rows with fewer values than columns (pandas pads them with empty strings) or an empty value."""
    empty = (table == "").to_numpy()
    rows = np.flatnonzero(empty.any(axis=1))
    if not len(rows):
        return
    line = int(table.index[rows[0]])
    count = _raw_line(path, line).count(",") + 1
    if count != len(COLUMNS):
        raise CorruptDataError(f"{path}, line {line}: {count} values, expected {len(COLUMNS)}")
    column = COLUMNS[int(np.flatnonzero(empty[rows[0]])[0])]
    raise CorruptDataError(f"{path}, line {line}: empty value in column {column!r}")


def _raw_line(path: Path, line: int) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return next(itertools.islice(handle, line - 1, None), "").rstrip("\r\n")


def _numbers(path: Path, column: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        line = column.index[np.flatnonzero(bad)[0]]
        raise CorruptDataError(f"{path}, line {line}: {column.name} is {column[line]!r}, not a number")
    return numbers


def _check_values(path: Path, column: pd.Series, allowed: dict[str, int | None]) -> pd.Series:
    """Refuse values outside `allowed`; return the column mapped through it."""
    known = column.isin(list(allowed))
    if not known.all():
        line = column.index[np.flatnonzero(~known.to_numpy())[0]]
        raise CorruptDataError(f"{path}, line {line}: {column.name} {column[line]!r} is not one of "
                               f"{', '.join(map(repr, allowed))}")
    return column.map(allowed)
