"""Images as data: a column of references (a path or URI read through fsspec, or the image itself
inline as base64 or a ``data:`` URI), a folder-per-class data set turned into such a table, and the
fitted transform (decode, resize, normalise per channel) shipped with the model."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlpipeline import store
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DATA_URI = re.compile(r"data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}")
MODES = {1: "L", 3: "RGB"}


def is_inline(ref: str) -> bool:
    """A reference that holds the image: a data URI, or base64 (which, unlike a file name with its
    extension, has no dot)."""
    if DATA_URI.match(ref):
        return True
    return len(ref) >= 16 and "." not in ref and bool(BASE64.fullmatch(ref))


def image_bytes(ref: str) -> bytes:
    if is_inline(ref):
        try:
            return base64.b64decode(DATA_URI.sub("", ref, count=1), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"invalid base64: {exc}") from None
    return artifacts.read_bytes(ref)


def open_image(raw: bytes) -> Any:
    """The decoded image (a PIL image); ValueError when Pillow cannot read the bytes."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(str(exc)) from None
    return image


def decode(raw: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Pixels as float32 in [0, 1], shape (channels, height, width)."""
    from PIL import Image

    try:
        image = open_image(raw)
    except ValueError as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    resized = image.convert(MODES[channels]).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def load(ref: Any, size: tuple[int, int], channels: int) -> np.ndarray:
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError("is not an image reference (a path, URI or base64 string)")
    try:
        return decode(image_bytes(ref), size, channels)
    except (FileNotFoundError, StepError) as exc:
        raise ValueError(str(exc)) from None


def shown(ref: str) -> str:
    return ref if not is_inline(ref) else ref[:24] + "…"


def folder_table(uri: str, label: str, column: str = "image") -> pd.DataFrame:
    """A folder with one subfolder per class (``<uri>/<class>/<image>``) as a table of references
    and labels, in a stable order."""
    root = uri.rstrip("/")
    rows = [
        {column: p.uri, label: p.uri.rsplit("/", 2)[-2]}
        for p in store.partitions(root + "/*/*")
        if p.uri.lower().endswith(EXTENSIONS)
    ]
    if not rows:
        raise StepError(
            f"spec.data.uri: no images under {uri} (expected {uri}/<class>/<image>, one folder per class, "
            f"extensions {', '.join(EXTENSIONS)})"
        )
    return pd.DataFrame(rows)


def resolve(frame: pd.DataFrame, columns: list[str], base: str) -> None:
    """Relative references in a manifest are relative to the manifest's folder."""
    folder = base.rsplit("/", 1)[0] if "/" in base else "."
    for column in columns:
        frame[column] = [
            ref
            if not isinstance(ref, str) or is_inline(ref) or "://" in ref or ref.startswith("/")
            else f"{folder}/{ref}"
            for ref in frame[column]
        ]


def check_readable(frame: pd.DataFrame, columns: list[str], size: tuple[int, int], channels: int) -> None:
    """Every image decodes, or the step fails naming the first ones that do not."""
    bad: list[str] = []
    for column in columns:
        for ref in frame[column].dropna():
            try:
                load(ref, size, channels)
            except ValueError as exc:
                bad.append(f"{shown(str(ref))}: {exc}")
    if bad:
        raise StepError(f"{len(bad)} images cannot be read, e.g. " + "; ".join(bad[:3]))


class ImageTransform(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """One image column to ``channels x height x width`` features, normalised per channel with the
    mean and standard deviation of the train split."""

    def __init__(self, size: tuple[int, int] = (28, 28), channels: int = 1) -> None:
        self.size = size
        self.channels = channels

    def pixels(self, column: Any) -> np.ndarray:
        refs = np.asarray(column).reshape(-1)
        size = (int(self.size[0]), int(self.size[1]))
        if not len(refs):
            return np.zeros((0, self.channels, *size), dtype=np.float32)
        return np.stack([load(ref, size, self.channels) for ref in refs])

    def fit(self, column: Any, y: Any = None) -> ImageTransform:
        pixels = self.pixels(column)
        self.mean_ = pixels.mean(axis=(0, 2, 3))
        self.std_ = pixels.std(axis=(0, 2, 3)) + 1e-6
        self.shape_ = (self.channels, *tuple(self.size))
        return self

    def transform(self, column: Any) -> np.ndarray:
        pixels = self.pixels(column)
        normalised = (pixels - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]
        return np.asarray(normalised.reshape(len(pixels), -1))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"pixel{i}" for i in range(int(np.prod(self.shape_)))], dtype=object)


def image_shape(preprocessor: Any) -> tuple[int, ...] | None:
    """(channels, height, width) of the one image column a fitted preprocessor reads, if any."""
    for _name, transformer, _columns in getattr(preprocessor, "transformers_", []):
        if isinstance(transformer, ImageTransform):
            return tuple(transformer.shape_)
    return None
