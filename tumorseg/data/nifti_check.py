"""Integrity check of NIfTI files, which SimpleITK reads without a word when they are broken.

ITK's NIfTI reader zero-fills the voxels missing from a truncated file, never checks the gzip
trailer and turns NaN/Inf voxels into 0. ``check_nifti`` therefore reads the file once more as a
stream: a ``.nii.gz`` is inflated chunk by chunk, so the CRC-32 and length in the gzip trailer are
checked (as gzip and nibabel do); the data section must be as long as the header says; float
voxels are counted for NaN/Inf on the way. Only one chunk is held at a time, never a second copy
of the image. ISA-L's inflate (``isal``) is used where installed: it halves the cost of the pass.

Measured on a 240x240x155 float32 BraTS-sized channel (11.6 MB compressed, loaded 2-core machine):
SimpleITK's read 0.23 s, this pass 0.08 s with ``isal`` (0.15-0.18 s with the standard ``zlib``);
a uint8 label 0.012 s.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from tumorseg.errors import TumorsegError, bad_file

_inflate_module: ModuleType | None
try:
    from isal import isal_zlib as _inflate_module  # ISA-L: same API as zlib, about twice as fast
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps working without it
    _inflate_module = None

_READ_CHUNK = 1 << 20  # compressed bytes read at a time
_OUT_CHUNK = 4 << 20  # inflated bytes per step: zeros compress 1000:1, so the output is capped
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + 15  # zlib: expect a gzip header and check its CRC-32 / length trailer
_FIX = "re-export or re-download it"

#: NIfTI datatype codes of IEEE floats (complex ones as pairs), as numpy dtypes.
_FLOAT_TYPES = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}


@dataclass(frozen=True)
class _Header:
    """What the check needs of a NIfTI header."""

    data_offset: int  # byte offset of the voxels in the (inflated) stream
    data_bytes: int  # bytes of voxel data the dimensions and bitpix imply
    float_dtype: np.dtype | None  # dtype of float voxels (with byte order), None for integers


def _zlib() -> ModuleType:
    return _inflate_module if _inflate_module is not None else zlib


def _parse_header(path: Path, head: bytes) -> _Header | None:
    """The data layout of a NIfTI-1/2 single-file header; None for a header/image pair."""
    if len(head) < 4:
        raise bad_file(path, "is truncated or corrupt (no NIfTI header)", _FIX)
    for order in "<>":
        (size,) = struct.unpack_from(f"{order}i", head, 0)
        if size in (348, 540):
            break
    else:
        raise bad_file(path, "is not a NIfTI file (header size field is wrong)", _FIX)
    if len(head) < size:
        raise bad_file(path, "is truncated or corrupt (header incomplete)", _FIX)
    if size == 348:
        dims = struct.unpack_from(f"{order}8h", head, 40)
        datatype, bitpix = struct.unpack_from(f"{order}hh", head, 70)
        (offset,) = struct.unpack_from(f"{order}f", head, 108)
        single_file, minimum = head[344:348] == b"n+1\x00", 352
    else:
        datatype, bitpix = struct.unpack_from(f"{order}hh", head, 12)
        dims = struct.unpack_from(f"{order}8q", head, 16)
        (offset,) = struct.unpack_from(f"{order}q", head, 168)
        single_file, minimum = head[4:8] == b"n+2\x00", 544
    if not single_file:
        return None
    rank = dims[0]
    if not 1 <= rank <= 7 or any(d < 1 for d in dims[1 : rank + 1]) or bitpix <= 0:
        raise bad_file(path, "is corrupt (invalid dimensions in the NIfTI header)", _FIX)
    if not math.isfinite(offset):
        raise bad_file(path, "is corrupt (invalid vox_offset in the NIfTI header)", _FIX)
    voxels = math.prod(dims[1 : rank + 1])
    dtype = _FLOAT_TYPES.get(datatype)
    return _Header(
        data_offset=max(int(offset), minimum),
        data_bytes=voxels * bitpix // 8,
        float_dtype=np.dtype(order + dtype) if dtype else None,
    )


def _inflate(path: Path, stream: BinaryIO) -> Iterator[bytes]:
    """The inflated bytes of a gzip file (one or more members, zero padding allowed).

    Raises a one-line ``TumorsegError`` for a stream that ends early, fails its CRC/length check,
    or holds something else than gzip members after the first one.
    """
    engine = _zlib()
    inflater = None
    pending = stream.read(_READ_CHUNK)
    while True:
        if not pending:
            pending = stream.read(_READ_CHUNK)
            if not pending:
                break
        if inflater is None:
            pending = pending.lstrip(b"\0")  # padding after a member, as gzip tolerates
            if not pending:
                continue
            if not pending.startswith(_GZIP_MAGIC):
                raise bad_file(path, "is corrupt (data after the end of its gzip stream)", _FIX)
            inflater = engine.decompressobj(_GZIP_WBITS)
        try:
            out = inflater.decompress(pending, _OUT_CHUNK)
        except engine.error as exc:
            raise bad_file(path, f"is truncated or corrupt (gzip: {exc})", _FIX) from None
        pending = inflater.unconsumed_tail
        if out:
            yield out
        if inflater.eof:
            pending, inflater = inflater.unused_data, None
        elif not pending:
            # Output left inside the inflater when the cap was hit as the input ran out.
            while out := inflater.decompress(b"", _OUT_CHUNK):
                yield out
            if inflater.eof:
                pending, inflater = inflater.unused_data, None
    if inflater is not None:
        raise bad_file(path, "is truncated or corrupt (the gzip stream ends early)", _FIX)


def check_nifti(path: Path | str) -> None:
    """Raise a one-line ``TumorsegError`` unless ``path`` is a complete, intact NIfTI file.

    Checks: the gzip stream (if compressed) is complete and passes its CRC-32 and length check;
    the data section holds every voxel the header declares; float voxels are all finite (the
    message gives the count). A header/image pair (``ni1``) is checked by its reader instead.
    """
    path = Path(path)
    with path.open("rb") as stream:
        compressed = stream.read(2) == _GZIP_MAGIC
        stream.seek(0)
        if not compressed:
            _check_uncompressed(path, stream)
            return
        chunks = _inflate(path, stream)
        head = b""
        for chunk in chunks:  # the first inflated chunk (4 MB) normally holds the whole header
            head += chunk
            if len(head) >= 544:
                break
        header = _parse_header(path, head)
        if header is None:
            for _ in chunks:
                pass
            return
        _scan(path, header, head, chunks)


def _check_uncompressed(path: Path, stream: BinaryIO) -> None:
    """A plain ``.nii``: the file size tells truncation; only float data needs to be read."""
    header = _parse_header(path, stream.read(544))
    if header is None:
        return
    size = path.stat().st_size
    if header.data_offset + header.data_bytes > size:
        raise _short(path, size - header.data_offset, header.data_bytes)
    if header.float_dtype is not None:
        stream.seek(0)
        _scan(path, header, b"", iter(lambda: stream.read(_READ_CHUNK), b""))


def _short(path: Path, have: int, need: int) -> TumorsegError:
    return bad_file(
        path, f"is truncated or corrupt ({max(have, 0)} of {need} bytes of voxel data)", _FIX
    )


def _scan(path: Path, header: _Header, head: bytes, chunks: Iterator[bytes]) -> None:
    """Consume every chunk; check the data length and count non-finite float voxels."""
    start, stop = header.data_offset, header.data_offset + header.data_bytes
    dtype = header.float_dtype
    position, carry, nonfinite = 0, b"", 0
    for chunk in _prepend(head, chunks):
        lo, hi = max(start - position, 0), min(stop - position, len(chunk))
        position += len(chunk)
        if dtype is None or lo >= hi:
            continue
        data = memoryview(chunk)[lo:hi]
        if carry:  # an element split across two chunks (rare: chunks are 4 MB, offsets aligned)
            data = memoryview(carry + bytes(data))
        usable = len(data) - len(data) % dtype.itemsize
        values = np.frombuffer(data, dtype, count=usable // dtype.itemsize)
        finite = np.isfinite(values)
        if not finite.all():
            nonfinite += values.size - int(np.count_nonzero(finite))
        carry = bytes(data[usable:])
    if position < stop:
        raise _short(path, position - start, header.data_bytes)
    if nonfinite:
        raise bad_file(path, f"contains {nonfinite} NaN/Inf voxels", "fix or re-export the image")


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from chunks
