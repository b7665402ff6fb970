"""Writes an MP4-looking file of an exact size for scripts/bench.sh: the `ftyp` box of a real
MP4, then one `mdat` box (64-bit size) that runs to the end of the file, filled with random
bytes, so the top-level box structure is whole. Prints nothing; writes PATH and PATH.sha256.

usage: make-mp4.py FIXTURE_MP4 PATH BYTES
"""

import hashlib
import os
import struct
import sys


def main() -> None:
    fixture, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(fixture, "rb") as f:
        head = f.read(8)
        ftyp_size = struct.unpack(">I", head[:4])[0]
        if head[4:8] != b"ftyp" or not 8 <= ftyp_size <= 4096:
            sys.exit(f"{fixture} does not start with an ftyp box")
        ftyp = head + f.read(ftyp_size - 8)
    mdat_size = size - len(ftyp)
    if mdat_size < 16:
        sys.exit(f"size {size} is too small")
    header = ftyp + struct.pack(">I4sQ", 1, b"mdat", mdat_size)
    digest = hashlib.sha256()
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(header)
        digest.update(header)
        left = size - len(header)
        while left:
            block = os.urandom(min(left, 4 << 20))
            out.write(block)
            digest.update(block)
            left -= len(block)
    os.replace(tmp, path)
    with open(path + ".sha256", "w") as out:
        out.write(digest.hexdigest() + "\n")


if __name__ == "__main__":
    main()
