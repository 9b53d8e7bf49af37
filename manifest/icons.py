"""Draws the Teams app icons: color.png (192x192) and outline.png (32x32).

Run from this folder with any Python 3; it needs only the standard library.
The color icon is a white shield with a barrier across it on Cordon blue;
the outline icon is the same shield drawn in white on transparency, as
Teams asks for.
"""

import struct
import zlib

BLUE = (31, 58, 95)
WHITE = (255, 255, 255)


def inside_shield(x, y, margin=0.0):
    """Whether (x, y), both in [-1, 1], lies inside the shield shape."""
    top, shoulder, tip = -0.72 + margin, 0.05, 0.82 - margin
    half_width = 0.62 - margin
    if y < top or y > tip:
        return False
    if y <= shoulder:
        return abs(x) <= half_width
    narrowing = (tip - y) / (tip - shoulder)
    return abs(x) <= half_width * narrowing ** 0.8


def on_barrier(x, y):
    return -0.16 <= y <= 0.08 and abs(x) <= 0.44


def color_pixel(x, y):
    if inside_shield(x, y):
        return BLUE + (255,) if on_barrier(x, y) else WHITE + (255,)
    return BLUE + (255,)


def outline_pixel(x, y):
    ring = inside_shield(x, y) and not inside_shield(x, y, margin=0.14)
    if ring or (inside_shield(x, y) and on_barrier(x, y)):
        return WHITE + (255,)
    return (255, 255, 255, 0)


def render(size, pixel, samples=4):
    """Rows of RGBA bytes, each pixel averaged over samples x samples."""
    rows = []
    for row in range(size):
        line = bytearray()
        for column in range(size):
            total = [0, 0, 0, 0]
            for sy in range(samples):
                for sx in range(samples):
                    x = ((column + (sx + 0.5) / samples) / size) * 2 - 1
                    y = ((row + (sy + 0.5) / samples) / size) * 2 - 1
                    for channel, value in enumerate(pixel(x, y)):
                        total[channel] += value
            line.extend(round(value / samples**2) for value in total)
        rows.append(bytes(line))
    return rows


def png(size, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(
            ">I", zlib.crc32(body) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    with open("color.png", "wb") as out:
        out.write(png(192, render(192, color_pixel)))
    with open("outline.png", "wb") as out:
        out.write(png(32, render(32, outline_pixel)))
