"""Read a CTranslate2 ``model.bin`` (binary format versions 5-6) into numpy arrays.

Layout (little-endian): u32 version; string spec name; u32 spec revision; u32 variable count;
per variable: string name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count, raw bytes;
then u32 alias count and (alias, target) string pairs. A string is u16 length (including a
trailing NUL) followed by the bytes. The model config lives beside it in config.json.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The order of CTranslate2's DataType enum.
DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_VERSIONS = (5, 6)


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    spec: str
    revision: int
    version: int
    variables: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """A variable by name, following aliases (shared weights are stored once)."""
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(f"variable {name!r} not in the CTranslate2 model") from None


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"file ends early (wanted {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2(path: str | Path) -> CT2Model:
    """Parse ``model.bin``; arrays are copies, so the file is not kept open."""
    import numpy as np

    reader = _Reader(memoryview(Path(path).read_bytes()))
    version = reader.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(
            f"{path}: CTranslate2 binary version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    model = CT2Model(spec=reader.string(), revision=reader.unpack("I"), version=version)
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        dtype_id = reader.unpack("B")
        if dtype_id >= len(DTYPES):
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
        raw = reader.take(reader.unpack("I"))
        dtype = DTYPES[dtype_id]
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).copy()
        model.variables[name] = array.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias = reader.string()
        model.aliases[alias] = reader.string()
    return model
