"""safetensors files written and read in one sequential pass, without pickle.

The format is the standard one (8-byte header length, JSON header, raw little-endian data), so
``safetensors.torch.load_file`` and every other reader open our files. Writing streams each
tensor's memory straight to an unbuffered file (no serialised copy of the whole state in memory)
and fsyncs it; reading fills one buffer with large ``readinto`` calls and returns views into it.
Tensors are ordered by element size, so every view is aligned for its dtype.
"""

from __future__ import annotations

import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import torch

from accel.exceptions import CheckpointError

_NAMES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
}
for _attr, _code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("uint16", "U16"), ("uint32", "U32")):
    if hasattr(torch, _attr):
        _NAMES[getattr(torch, _attr)] = _code
_DTYPES = {code: dtype for dtype, code in _NAMES.items()}
_MAX_HEADER = 100 * 2**20
_CHUNK = 1 << 30
_PIECE = 64 * 2**20
_READERS = 4


def _as_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy().data) if flat.numel() else memoryview(b"")


def _write_all(handle: BinaryIO, data: memoryview) -> None:
    while len(data):
        written = handle.write(data[:_CHUNK])
        data = data[written or 0 :]


def write(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None, sync: bool = True
) -> int:
    """Write ``tensors`` (and string ``metadata``) as a safetensors file (fsynced if ``sync``); returns its size."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header: dict[str, object] = {}
    offset = 0
    for name, tensor in items:
        code = _NAMES.get(tensor.dtype)
        if code is None:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, which safetensors cannot store")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": code, "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb", buffering=0) as handle:
        _write_all(handle, memoryview(struct.pack("<Q", len(raw)) + raw))
        for _name, tensor in items:
            _write_all(handle, _as_bytes(tensor))
        if sync:
            os.fsync(handle.fileno())
    return 8 + len(raw) + offset


def _read_exact(handle: BinaryIO, size: int, path: Path) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise CheckpointError(f"{path} is truncated: its header is incomplete; the file cannot be loaded")
    return data


def _offsets(entry: dict[str, Any]) -> tuple[int, int]:
    begin, end = entry["data_offsets"]
    return int(begin), int(end)


def read_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, str], int]:
    """The tensor entries, the metadata and where the data starts, validated against the file size."""
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        (length,) = struct.unpack("<Q", _read_exact(handle, 8, path))
        if length > min(_MAX_HEADER, size - 8):
            raise CheckpointError(f"{path} is truncated or not a safetensors file (header of {length} bytes)")
        try:
            header = json.loads(_read_exact(handle, length, path))
        except ValueError as exc:
            raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({exc})") from None
    metadata = header.pop("__metadata__", None) or {}
    end = max((_offsets(e)[1] for e in header.values()), default=0)
    if 8 + length + end != size:
        raise CheckpointError(
            f"{path} is truncated: the header describes {8 + length + end} bytes, the file has {size}"
        )
    return header, metadata, 8 + length


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy().data)


def _fill(path: Path, jobs: list[tuple[int, memoryview]]) -> None:
    """Read ``(file offset, destination)`` jobs with a few concurrent streams (pread releases the GIL)."""
    pieces = [(off + i, view[i : i + _PIECE]) for off, view in jobs for i in range(0, len(view), _PIECE)]
    fd = os.open(path, os.O_RDONLY)

    def piece(job: tuple[int, memoryview]) -> None:
        offset, view = job
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise CheckpointError(f"{path} is truncated: read stopped at byte {offset + done}")
            done += got

    try:
        with ThreadPoolExecutor(_READERS) as pool:
            list(pool.map(piece, pieces))
    finally:
        os.close(fd)


def _fits(target: torch.Tensor | None, dtype: torch.dtype, shape: list[int]) -> bool:
    return (
        target is not None
        and target.device.type == "cpu"
        and target.dtype == dtype
        and list(target.shape) == shape
        and target.is_contiguous()
        and target.numel() > 0
    )


def read(
    path: str | Path, into: dict[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a safetensors file and its metadata.

    Entries whose tensor in ``into`` has the same dtype and shape (contiguous, on the CPU) are read
    straight into its memory and returned as that tensor; the others are freshly allocated.
    """
    path = Path(path)
    header, metadata, start = read_header(path)
    tensors: dict[str, torch.Tensor] = {}
    jobs: list[tuple[int, memoryview]] = []
    for name, entry in header.items():
        dtype = _DTYPES.get(str(entry["dtype"]))
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {entry['dtype']}, which accel cannot read")
        shape = [int(d) for d in entry["shape"]]
        target = (into or {}).get(name)
        tensor = target if target is not None and _fits(target, dtype, shape) else torch.empty(shape, dtype=dtype)
        begin, end = _offsets(entry)
        if end - begin != tensor.numel() * tensor.element_size():
            raise CheckpointError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} {entry['dtype']}")
        if tensor.numel():
            jobs.append((start + begin, _bytes_of(tensor)))
        tensors[name] = tensor
    _fill(path, jobs)
    return tensors, metadata
