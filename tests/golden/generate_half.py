#!/usr/bin/python3
"""Golden reference data for segloss's float16 and bfloat16 conversions (core/half.hpp), from
PyTorch's own conversions on the CPU.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_half.py

It rewrites tests/golden/half.txt next to this script, in the format of the other golden files
(README.md in this folder); tests/test_half.cpp reads it. Every number is a bit pattern (an
integer below 2^32, exact in the file's doubles).

Cases:
  * float16_to_float, bfloat16_to_float: every one of the 65,536 bit patterns converted by
    tensor.view(torch.float16 / torch.bfloat16).float(). Stored compactly: `block_hash` holds 256
    word-wise FNV-1a hashes (32-bit), one per block of 256 consecutive patterns (block b = patterns
    256 b .. 256 b + 255 in order, hashing the float results' bits), so a failure names its block;
    `edge_in` / `edge_out` list the results of chosen patterns explicitly (zeros, subnormals,
    normals at the boundaries, infinities, signaling and quiet NaNs with payloads).
  * float_to_float16, float_to_bfloat16: `in` float bit patterns and `out` the 16-bit results of
    tensor.half() / tensor.bfloat16(): every rounding class (just below, at and above the halfway
    point between neighbours, with an even and an odd lower neighbour), the subnormal range and
    its boundaries (2^-25, 2^-24, 2^-14), the overflow boundary (65504, 65520 for float16; FLT_MAX
    for bfloat16), infinities, zeros of both signs, NaNs with payloads of both signs, and random
    floats over the whole exponent range.
    For bfloat16, torch 1.13's vectorized conversion writes 0xFFFF for every NaN (its scalar path
    0x7FC0); segloss writes the quiet NaN with the sign kept. The test checks only that a NaN
    input gives a NaN there; every other output must match bit for bit.
"""

import os
import random
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "half.txt"
SEED = 20240611


def fnv1a_words(words):
    h = 2166136261
    for w in words:
        h = ((h ^ int(w)) * 16777619) & 0xFFFFFFFF
    return h


def to_float_bits(patterns, dtype):
    t = torch.from_numpy(np.asarray(patterns, dtype=np.uint16).view(np.int16)).view(dtype)
    return t.float().numpy().view(np.uint32)


def from_float_bits(bits, dtype):
    f = torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32))
    return f.to(dtype).view(torch.int16).numpy().view(np.uint16)


def tensor_line(name, values):
    return " ".join(["tensor", name, "1", str(len(values))] + ["%d" % int(v) for v in values])


def f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def to_float_case(name, dtype):
    every = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    out = to_float_bits(every, dtype)
    hashes = [fnv1a_words(out[256 * b:256 * (b + 1)]) for b in range(256)]
    edge = [0x0000, 0x8000, 0x0001, 0x8001, 0x0002, 0x03FF, 0x83FF, 0x0400, 0x0401, 0x3BFF,
            0x3C00, 0x3C01, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7C01, 0x7D00, 0x7E00, 0x7E01,
            0x7FFF, 0xFC01, 0xFE00, 0xFFFF, 0x0080, 0x007F, 0x3F80, 0x7F7F, 0x7F80, 0xFF80,
            0x7F81, 0x7FC0, 0xFFC1, 0x1234, 0xABCD, 0x5555, 0xAAAA]
    lines = ["case " + name, "loss " + name, tensor_line("block_hash", hashes),
             tensor_line("edge_in", edge), tensor_line("edge_out", to_float_bits(edge, dtype)),
             "end"]
    return "\n".join(lines) + "\n"


def f16_inputs(rng):
    bits = []
    # Around the halfway point between h and h + 1 for chosen float16 patterns h (even and odd).
    for h in [0x0000, 0x0001, 0x0002, 0x0003, 0x01FF, 0x0200, 0x03FE, 0x03FF, 0x0400, 0x0401,
              0x0402, 0x3BFF, 0x3C00, 0x3C01, 0x3C02, 0x4000, 0x4001, 0x5A5A, 0x5A5B, 0x7BFE,
              0x7BFF]:
        lo = to_float_bits([h], torch.float16)[0]
        hi = to_float_bits([h + 1], torch.float16)[0]
        mid = f32((struct.unpack("<f", struct.pack("<I", int(lo)))[0] +
                   struct.unpack("<f", struct.pack("<I", int(hi)))[0]) / 2.0)
        bits += [lo, lo + 1, mid - 1, mid, mid + 1, hi - 1]
    # Boundaries: 2^-25, 2^-24, 2^-14, 65504, 65520, inf, FLT_MAX, the smallest floats.
    for x in [2.0 ** -25, 2.0 ** -24, 1.5 * 2.0 ** -24, 2.5 * 2.0 ** -24, 2.0 ** -14,
              2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -26, 65504.0, 65519.0, 65520.0,
              65536.0, 1e30, float("inf"), 1.0, 0.1, 1.0 / 3.0, 2.0 ** -26, 2.0 ** -30]:
        b = f32(x)
        bits += [b - 1, b, b + 1] if x not in (float("inf"),) else [b]
    bits += [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF]
    return bits


def bf16_inputs(rng):
    bits = []
    for b in [0x0000, 0x0001, 0x007F, 0x0080, 0x3F7F, 0x3F80, 0x3F81, 0x4049, 0x404A, 0x7F7E,
              0x7F7F]:
        lo = b << 16
        mid = lo | 0x8000
        bits += [lo, lo + 1, mid - 1, mid, mid + 1, ((b + 1) << 16) - 1]
    bits += [0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0x7F800000, 0x00000001, 0x00008000,
             0x00018000, 0x00800000]
    return bits


def from_float_case(name, dtype, specific, rng):
    bits = list(specific)
    nans = [0x7FC00000, 0x7F800001, 0x7FA00000, 0x7F812345, 0x7FFFFFFF, 0x7F802000, 0x7FBFFFFF]
    bits += nans
    rand = [rng.getrandbits(32) for _ in range(600)]
    # Floats with exponents near the type's range, so subnormals and overflow get random draws.
    for lo, hi in ([(0x32000000, 0x39000000), (0x46000000, 0x48000000)]
                   if dtype == torch.float16 else [(0x00000000, 0x01000000),
                                                   (0x7E000000, 0x7F800000)]):
        rand += [rng.randrange(lo, hi) for _ in range(300)]
    bits += rand
    bits = [b & 0x7FFFFFFF for b in bits]
    bits = bits + [b | 0x80000000 for b in bits[: len(bits) // 2]]  # negative twins of half
    out = from_float_bits(bits, dtype)
    lines = ["case " + name, "loss " + name, tensor_line("in", bits), tensor_line("out", out),
             "end"]
    return "\n".join(lines) + "\n"


def main():
    rng = random.Random(SEED)
    cases = [to_float_case("float16_to_float", torch.float16),
             to_float_case("bfloat16_to_float", torch.bfloat16),
             from_float_case("float_to_float16", torch.float16, f16_inputs(rng), rng),
             from_float_case("float_to_bfloat16", torch.bfloat16, bf16_inputs(rng), rng)]
    path = os.path.join(HERE, OUTPUT)
    with open(path, "w") as f:
        f.write("# segloss golden data for float16 / bfloat16 conversions: generated by "
                "tests/golden/generate_half.py\n")
        f.write("# torch %s, seed %d. Do not edit; regenerate.\n" % (torch.__version__, SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c)
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main())
