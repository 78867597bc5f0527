"""Reading the records of a prediction request as the model's features declare them, refusing what
cannot be read rather than guessing.

- numeric: a JSON number, or a string holding a decimal number ("5.1", "-3", "1e3", " 2 "), read as
  a float. Refused: booleans, any other string ("abc", "nan", "inf", "1_000"), lists, objects, and
  numbers that are not finite (Infinity, 1e999): the estimators cannot use them.
- categorical: a string, number or boolean, kept as it is (the preprocessor reads its string form, so
  an unseen value is an unseen category). Refused: lists and objects.
- image: a string holding the image in base64 (optionally as a ``data:image/...;base64,`` URI) or
  its URI in the artifact store (s3://...; never a local path of the server); the image must
  decode (PNG, JPEG and the other formats Pillow reads). Refused: anything else, and references
  that cannot be fetched or decoded.
- null, NaN and a missing field are missing values: the preprocessor imputes them.
- a field the model does not declare is ignored (dropped from the cleaned record).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlpipeline.serving.limits import MAX_RECORDS, MAX_VALUE_CHARS, image_uri_refusal

MAX_PROBLEMS = 20
"""At most this many problems are reported, the first ones in record order."""

DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
SHOWN_CHARS = 40


@dataclass(frozen=True)
class Problem:
    """One value that cannot be read: ``records[index].field`` (field None: the record itself)."""

    index: int
    field: str | None
    value: Any
    reason: str

    @property
    def path(self) -> str:
        return f"records[{self.index}]" + ("" if self.field is None else f".{self.field}")

    def __str__(self) -> str:
        return f"{self.path}: {shown(self.value)} {self.reason}"


class UnreadableRecords(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class TooManyRecords(UnreadableRecords):
    """More records than one request may carry (serving/limits.py)."""


class Unreadable(Exception):
    """A value cannot be read; the argument is the reason."""


def shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bounded(value: str) -> str:
    if len(value) > MAX_VALUE_CHARS:
        raise Unreadable(f"is longer than {MAX_VALUE_CHARS} characters (MLP_MAX_VALUE_CHARS)")
    return value


def read_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Unreadable("is not a number")
    if isinstance(value, str):
        bounded(value)
    if isinstance(value, str) and not DECIMAL.fullmatch(value):
        raise Unreadable("is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Unreadable("is not a finite number")
    return number


def read_image(value: Any) -> str:
    from mlpipeline.steps import images

    if not isinstance(value, str) or not value.strip():
        raise Unreadable("is not an image (base64 or a URI)")
    if not images.is_inline(value) and (refusal := image_uri_refusal(value)):
        raise Unreadable(refusal)
    try:
        raw = images.image_bytes(value)
    except ValueError as error:
        raise Unreadable(f"is not a readable image: {error}") from None
    except Exception as error:  # any storage client's error: the client's URI, so a 400
        raise Unreadable(f"could not be read from the artifact store ({type(error).__name__})") from None
    try:
        images.open_image(raw)
    except (ValueError, OSError) as error:
        raise Unreadable(f"is not a readable image: {error}") from None
    return value


def read_category(value: Any) -> str | int | float | bool:
    if not isinstance(value, str | int | float | bool):
        raise Unreadable("is not a category (a string, number or boolean)")
    return bounded(value) if isinstance(value, str) else value


def within_request_limit(records: Sequence[Any]) -> None:
    """Raises TooManyRecords when one request carries more records than a server takes at once
    (a request's bound, not a data set's: labeling reads whole rounds with clean_records)."""
    if len(records) > MAX_RECORDS:
        raise TooManyRecords(
            [
                Problem(
                    MAX_RECORDS,
                    None,
                    f"{len(records)} records",
                    f"is past the {MAX_RECORDS} records one request may carry (MLP_MAX_RECORDS): "
                    "send them in several requests",
                )
            ]
        )


def clean_records(features: Mapping[str, str], records: Sequence[Any]) -> list[dict[str, Any]]:
    """The records as the model reads them: declared fields only, numbers as floats, missing values
    as None. Raises UnreadableRecords naming up to MAX_PROBLEMS values that cannot be read."""
    cleaned: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(Problem(index, None, record, "is not an object"))
        else:
            row: dict[str, Any] = {}
            for column, kind in features.items():
                if column not in record:
                    continue
                value = record[column]
                try:
                    if is_missing(value):
                        row[column] = None
                    elif kind == "numeric":
                        row[column] = read_number(value)
                    elif kind == "image":
                        row[column] = read_image(value)
                    else:
                        row[column] = read_category(value)
                except Unreadable as error:
                    problems.append(Problem(index, column, value, str(error)))
            cleaned.append(row)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise UnreadableRecords(problems[:MAX_PROBLEMS])
    return cleaned
