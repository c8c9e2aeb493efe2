"""Upload reader of a velocity model: one (70, 70) grid in m/s, as NumPy ``.npy``.

A velocity model query is OpenFWI's layout, ``VELOCITY_MODEL_SHAPE`` = (depth z, distance
x) = (70, 70) cells of 10 m, z downwards, in m/s. The same checks apply to a model read
from a ``.npy`` file (:func:`read_velocity_model`) and to one sent as JSON rows
(:func:`check_velocity_model`).

Rules:

- **Format**: a ``.npy`` file by its magic bytes (``\\x93NUMPY``); anything else is refused.
  Its header is read first: pickled (object) arrays are refused before any data is read.
- **Shape**: (70, 70) or (1, 70, 70); **dtype**: real numbers (float32 or float64;
  integers are converted), read as float32.
- **Values**: finite, within ``PLAUSIBLE_M_S`` (100–20,000 m/s; a model whose largest
  value is below 100 is taken for km/s and refused with that hint). Values outside the
  encoders' training range [``V_MIN_M_S``, ``V_MAX_M_S``] are accepted with a note.

Every refusal is an :class:`~seislens.data.gather_files.UploadError` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from seislens.data.gather_files import UploadError, npy_header
from seislens.models.contract import V_MAX_M_S, V_MIN_M_S, VELOCITY_MODEL_SHAPE

VELOCITY_UPLOAD_SHAPES: tuple[tuple[int, ...], ...] = (
    VELOCITY_MODEL_SHAPE,
    (1, *VELOCITY_MODEL_SHAPE),
)
"""Array shapes accepted for one velocity model."""

PLAUSIBLE_M_S: tuple[float, float] = (100.0, 20_000.0)
"""Velocities (m/s) outside this range are refused as not a velocity model in m/s."""

_NPY_MAGIC = b"\x93NUMPY"
_EXPECTED = f"a NumPy .npy array of shape {VELOCITY_MODEL_SHAPE} (depth, x) in m/s"

VelocityModelFormat = Literal["npy", "json"]


@dataclass
class VelocityModelUpload:
    """A velocity model read from an upload.

    Attributes:
        data: float32 (70, 70) m/s, z downwards.
        format: ``'npy'`` (a file) or ``'json'`` (rows in a JSON body).
        notes: what the reader did beyond a plain read (conversions, range notes).
    """

    data: np.ndarray
    format: VelocityModelFormat
    notes: list[str] = field(default_factory=list)


def read_velocity_model(path: Path, filename: str | None = None) -> VelocityModelUpload:
    """Read an uploaded ``.npy`` velocity model (header checked before the data).

    Args:
        path: the uploaded file on disk.
        filename: the client's name for it (names the file in messages).

    Raises:
        UploadError: empty, not a .npy file, pickled objects, another shape or dtype,
            non-finite or implausible values. No other exception type leaves.
    """
    name = filename or Path(path).name
    try:
        return _read_npy_model(Path(path), name)
    except UploadError:
        raise
    except Exception as exc:  # the contract: every failure is an UploadError
        raise UploadError(
            f"could not read '{name}': {type(exc).__name__}: {exc}", reason="unreadable"
        ) from exc


def _read_npy_model(path: Path, name: str) -> VelocityModelUpload:
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if not head:
        raise UploadError(f"'{name}' is empty (0 bytes); expected {_EXPECTED}", reason="empty")
    if head != _NPY_MAGIC:
        raise UploadError(
            f"'{name}' is not a .npy file (no NumPy magic bytes); expected {_EXPECTED}",
            reason="unknown_format",
        )
    shape, dtype = npy_header(path, name, VELOCITY_MODEL_SHAPE)
    _check_shape(name, shape)
    if dtype.kind not in "fiu":
        raise UploadError(
            f"'{name}' holds dtype {dtype}; expected real numbers (float32 or float64)",
            reason="dtype",
        )
    upload = check_velocity_model(np.load(path, allow_pickle=False), name, "npy")
    if dtype != np.float32:
        upload.notes.insert(0, f"converted from {dtype} to float32")
    return upload


def check_velocity_model(
    values: np.ndarray | list, name: str, fmt: VelocityModelFormat = "json"
) -> VelocityModelUpload:
    """One velocity model from an array or nested rows, checked: shape (70, 70) or
    (1, 70, 70), finite, within :data:`PLAUSIBLE_M_S`.

    Args:
        values: the model in m/s.
        name: what to call it in messages (a file name, or ``velocity_model``).
        fmt: where it came from.

    Raises:
        UploadError: reasons 'shape', 'non_finite' or 'velocity_range'.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # ragged rows
        raise UploadError(
            f"'{name}' is not a rectangular grid of numbers ({exc}); expected {_EXPECTED}",
            reason="shape",
        ) from exc
    _check_shape(name, array.shape)
    model = array.reshape(VELOCITY_MODEL_SHAPE)
    _check_values(name, model)
    notes = []
    low, high = float(model.min()), float(model.max())
    if low < V_MIN_M_S or high > V_MAX_M_S:
        notes.append(
            f"velocities span {low:.0f}–{high:.0f} m/s, beyond the encoders' training range "
            f"{V_MIN_M_S:.0f}–{V_MAX_M_S:.0f} m/s: expect weaker matches"
        )
    return VelocityModelUpload(model.astype(np.float32), fmt, notes)


def _check_shape(name: str, shape: tuple[int, ...]) -> None:
    if tuple(shape) not in VELOCITY_UPLOAD_SHAPES:
        raise UploadError(
            f"'{name}' holds an array of shape {tuple(shape)}; expected {VELOCITY_MODEL_SHAPE} "
            f"(depth, x; 10 m cells) or {VELOCITY_UPLOAD_SHAPES[1]}",
            reason="shape",
        )


def _check_values(name: str, model: np.ndarray) -> None:
    finite = np.isfinite(model)
    if not finite.all():
        z, x = (int(i) for i in np.argwhere(~finite)[0])
        raise UploadError(
            f"'{name}' holds {int((~finite).sum())} NaN or Inf values (first at z={z}, "
            f"x={x}); expected finite velocities in m/s",
            reason="non_finite",
        )
    low, high = float(model.min()), float(model.max())
    lo_ok, hi_ok = PLAUSIBLE_M_S
    if low >= lo_ok and high <= hi_ok:
        return
    hint = "; it looks like km/s: multiply by 1000" if 0 < high < lo_ok else ""
    raise UploadError(
        f"'{name}' holds velocities from {low:g} to {high:g}; expected m/s within "
        f"{lo_ok:g}–{hi_ok:g}{hint}",
        reason="velocity_range",
    )
