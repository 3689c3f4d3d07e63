"""Decode image files of any size to RGB squares of one stored resolution, in parallel.

Each image becomes uint8 ``[3, size, size]``: the centre square of its short side, resampled to
``size`` (what a short-side resize followed by a centre crop gives, in one resampling step).
Real collections are messy, and each oddity is handled here by rule:

- grayscale, palette, CMYK and alpha images are converted to RGB (Pillow's conversions;
  alpha is dropped);
- a file is decoded by its content, not its name (a PNG named ``.JPEG`` is read as a PNG);
- the EXIF orientation tag is applied (``ImageOps.exif_transpose``), so a photo stored on
  its side comes out upright;
- a truncated or unreadable file is refused with its name, or, with ``bad_images="skip"``,
  left out and counted.

Decoding runs in worker processes over chunks of files (no file content is executed; Pillow
only parses image formats). Large JPEGs use Pillow's draft mode (DCT scaling) to decode at no
less than twice the stored size before the antialiased resampling, which keeps the quality of a
full decode at a fraction of its cost.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import PIL.Image
import PIL.ImageOps

#: File name endings read as images (case-insensitive).
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
#: Files that real datasets carry beside their images and that are not data: annotation and
#: label tables, and what file browsers leave behind (``.DS_Store`` and other hidden files are
#: already left out by :mod:`augkd.data.archive`). Any other non-image file is refused by name.
IGNORED_SUFFIXES = (".txt", ".csv", ".xml", ".json", ".mat")
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
#: The ways a bad image is treated (the ``bad_images`` dataset option).
BAD_IMAGE_POLICIES = ("error", "skip")
#: Files per task of a worker process.
CHUNK = 64


def is_image_name(path: str) -> bool:
    """Whether ``path``'s name ends with one of :data:`IMAGE_SUFFIXES`."""
    return path.lower().endswith(IMAGE_SUFFIXES)


def is_ignored_name(path: str) -> bool:
    """Whether ``path`` is an annotation table or a file browser's leftover (see above)."""
    name = PurePosixPath(path).name.lower()
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BadImageError(ValueError):
    """An image that cannot be decoded; the message names the file and the reason."""


def decode_square(content: bytes | Path, size: int, max_pixels: int) -> np.ndarray:
    """Decode one image file to uint8 ``[size, size, 3]`` (see the module docstring).

    Args:
        content: the file's bytes, or its path.
        size: the stored side in pixels.
        max_pixels: the largest declared width x height accepted, checked before decoding.

    Raises:
        ValueError: the file is not an image Pillow can read, is truncated, or is too large.
    """
    source = io.BytesIO(content) if isinstance(content, bytes) else content
    with PIL.Image.open(source) as image:  # reads the header only
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"it declares {width}x{height} pixels, more than the cap of "
                             f"{max_pixels:,} (raise it with the max_image_pixels dataset option)")
        if image.format == "JPEG":
            image.draft("RGB", (2 * size, 2 * size))  # DCT scaling, never below twice the target
        upright = PIL.ImageOps.exif_transpose(image)  # decodes; a truncated file fails here
        rgb = upright.convert("RGB")
    width, height = rgb.size
    short = min(width, height)
    left, top = (width - short) / 2, (height - short) / 2
    square = rgb.resize((size, size), PIL.Image.Resampling.BILINEAR,
                        box=(left, top, left + short, top + short))
    return np.array(square, dtype=np.uint8)  # writable: torch.from_numpy needs it


@dataclass(frozen=True)
class DecodeJob:
    """What a worker needs for one chunk: names (for messages), contents, and the options."""

    names: list[str]
    contents: list[bytes | Path]
    size: int
    max_pixels: int


def decode_chunk(job: DecodeJob) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a chunk; returns uint8 ``[k, 3, size, size]`` and ``(position, reason)`` of each
    image that failed (its rows are zero)."""
    out = np.zeros((len(job.names), 3, job.size, job.size), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    for k, content in enumerate(job.contents):
        try:
            out[k] = decode_square(content, job.size, job.max_pixels).transpose(2, 0, 1)
        except (OSError, ValueError, SyntaxError, EOFError, PIL.Image.DecompressionBombError,
                ZeroDivisionError) as exc:
            bad.append((k, f"{type(exc).__name__}: {exc}"))
    return out, bad


def _jobs(names: Sequence[str], contents: Sequence[bytes | Path], size: int,
          max_pixels: int) -> Iterator[DecodeJob]:
    for start in range(0, len(names), CHUNK):
        yield DecodeJob(list(names[start:start + CHUNK]), list(contents[start:start + CHUNK]),
                        size, max_pixels)


def decode_into(
    out: np.ndarray,
    names: Sequence[str],
    contents: Sequence[bytes | Path],
    *,
    size: int,
    max_pixels: int,
    bad_images: str = "error",
    workers: int | None = None,
    describe: Callable[[str], str] = str,
) -> np.ndarray:
    """Decode ``contents`` into the rows of ``out`` (uint8 ``[N, 3, size, size]``, e.g. a
    memory-mapped file), in parallel over ``workers`` processes (None: every core).

    Args:
        names: one name per image, for messages (``describe(name)`` is what is printed).
        bad_images: ``"error"`` stops at the first bad image, naming it; ``"skip"`` zeroes its
            row and reports it in the returned mask.

    Returns:
        bool ``[N]``, True for the images decoded (all True under ``"error"``).
    """
    if bad_images not in BAD_IMAGE_POLICIES:
        raise ValueError(f"dataset option bad_images must be one of "
                         f"{', '.join(BAD_IMAGE_POLICIES)}, got {bad_images!r}")
    workers = default_workers() if workers is None else workers
    good = np.ones(len(names), dtype=bool)
    jobs = _jobs(names, contents, size, max_pixels)
    if workers <= 1 or len(names) <= CHUNK:
        results: Iterator = map(decode_chunk, jobs)
        pool = None
    else:
        # fork where there is one: spawn and forkserver re-run the caller's main script in
        # every worker, which breaks a plain script without an ``if __name__ == "__main__"``
        # guard. The workers only run Pillow and numpy (no torch, no CUDA, no OpenMP), so the
        # parent's threads cannot leave them a held lock they need.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        results = pool.map(decode_chunk, jobs)
    try:
        for chunk_index, (rows, bad) in enumerate(results):
            start = chunk_index * CHUNK
            out[start:start + len(rows)] = rows
            for position, reason in bad:
                name = names[start + position]
                if bad_images == "error":
                    raise BadImageError(
                        f"cannot read image {describe(name)}: {reason} (pass the dataset "
                        "option bad_images=skip to leave such files out, counted)"
                    )
                good[start + position] = False
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return good
