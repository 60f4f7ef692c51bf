#!/usr/bin/env python3
"""Golden fixtures for Tests/ImagingTests (decoding, resizing, CLIP preprocessing, bad input).

The reference is what a Python LLaVA pipeline does:
    Image.open(f).convert("RGB")                      -> decoding
    img.resize((w, h), Image.BICUBIC)                 -> resizing
    expand2square(img, tuple(int(x*255) for x in image_mean))   (LLaVA image_aspect_ratio=pad)
    CLIPImageProcessor(...).preprocess(img)           -> pixel tensors (slow / Pillow backend)

Setup (fixture generation only; CI never runs this):
    flock /tmp/pip.lock python3 -m pip install -q pillow numpy transformers
    python3 tools/reference/make_image_fixtures.py

Inputs: small synthetic images written here (every PNG colour type / bit depth, palette + tRNS,
Adam7 interlacing; JPEG grayscale, RGB at three subsamplings, progressive, CMYK and YCCK) and real
photos from seeds/images (referenced by path, never copied). The YCCK JPEG needs libjpeg's
encoder directly (Pillow cannot write YCCK), so a 40-line C program is compiled with `cc -ljpeg`.
Outputs go to Tests/ImagingTests/Fixtures/; see the README written there.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import PIL
from PIL import Image, features

import transformers

try:  # transformers >= 5: backends are separate classes; pick the Pillow/numpy one explicitly
    from transformers import CLIPImageProcessorPil as SlowCLIPImageProcessor
except ImportError:  # transformers 4.x: the slow processor is CLIPImageProcessor itself
    from transformers import CLIPImageProcessor as SlowCLIPImageProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "ImagingTests", "Fixtures")
SEEDS = os.path.join(ROOT, "seeds", "images")
RNG = np.random.default_rng(20261201)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def sha256(array_or_bytes):
    data = array_or_bytes if isinstance(array_or_bytes, bytes) else np.ascontiguousarray(array_or_bytes).tobytes()
    return hashlib.sha256(data).hexdigest()


def write(relative, data):
    path = os.path.join(OUT, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return relative


def pil_rgb(path):
    """What the model code sees: np.asarray(Image.open(path).convert("RGB")), or the error."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB")), None
    except Exception as error:  # noqa: BLE001 - any Pillow failure is "PIL refuses this file"
        return None, f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------
# A minimal PNG writer: every colour type and bit depth, all five filter types, Adam7.
# (Pillow cannot write 2/4-bit gray, 16-bit gray+alpha/RGBA, or interlaced PNGs.)

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One row of samples (w * channels,) -> bytes at `depth` bits per sample."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per_byte = 8 // depth
    padded = np.zeros(-(-len(samples) // per_byte) * per_byte, dtype=np.uint16)
    padded[: len(samples)] = samples
    padded = padded.reshape(-1, per_byte)
    out = np.zeros(len(padded), dtype=np.uint16)
    for i in range(per_byte):
        out |= padded[:, i] << (8 - depth * (i + 1))
    return out.astype(np.uint8).tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp):
    """Filters rows (list of bytes) cycling through filter types 0..4."""
    out = bytearray()
    previous = bytes(len(rows[0])) if rows else b""
    for index, row in enumerate(rows):
        kind = index % 5
        filtered = bytearray(len(row))
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            predictor = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
            filtered[i] = (x - predictor) & 0xFF
        out.append(kind)
        out += filtered
        previous = row
    return bytes(out)


def encode_png(samples, colour_type, depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, channels) integer array of raw sample values (palette indices for type 3)."""
    height, width = samples.shape[:2]
    channels = CHANNELS[colour_type]
    assert samples.shape[2] == channels
    bpp = max(1, channels * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = [pack_row(sub[y].reshape(-1), depth) for y in range(sub.shape[0])]
        raw += filter_rows(rows, bpp)
    png = b"\x89PNG\r\n\x1a\n"
    png += png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        png += png_chunk(b"tRNS", trns)
    png += png_chunk(b"IDAT", zlib.compress(raw, 9))
    png += png_chunk(b"IEND", b"")
    return png


def smooth_field(height, width, channels, top):
    """Gradients + a little noise: exercises every value range without compressing to nothing."""
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for c in range(channels):
        base = (x * (c + 1) * 7 + y * (5 - c) * 11) % (top + 1)
        noise = RNG.integers(0, max(2, (top + 1) // 16), size=(height, width))
        planes.append(np.clip(base + noise, 0, top))
    return np.stack(planes, axis=-1)


def png_cases():
    h, w = 19, 29
    cases = {}
    for depth in (1, 2, 4, 8, 16):
        cases[f"gray{depth}"] = encode_png(smooth_field(h, w, 1, (1 << depth) - 1), 0, depth)
    # 16-bit gray with most values under 255: Pillow's "I;16" -> RGB clamps instead of scaling.
    low16 = smooth_field(h, w, 1, 600)
    cases["gray16_low"] = encode_png(low16, 0, 16)
    cases["gray8_trns"] = encode_png(smooth_field(h, w, 1, 255), 0, 8, trns=struct.pack(">H", 7))
    cases["graya8"] = encode_png(smooth_field(h, w, 2, 255), 4, 8)
    cases["graya16"] = encode_png(smooth_field(h, w, 2, 65535), 4, 16)
    cases["rgb8"] = encode_png(smooth_field(h, w, 3, 255), 2, 8)
    cases["rgb8_trns"] = encode_png(smooth_field(h, w, 3, 255), 2, 8, trns=struct.pack(">HHH", 1, 2, 3))
    cases["rgb16"] = encode_png(smooth_field(h, w, 3, 65535), 2, 16)
    cases["rgba8"] = encode_png(smooth_field(h, w, 4, 255), 6, 8)
    cases["rgba16"] = encode_png(smooth_field(h, w, 4, 65535), 6, 16)
    for depth in (1, 2, 4, 8):
        entries = 1 << depth
        palette = RNG.integers(0, 256, size=(entries, 3))
        indices = smooth_field(h, w, 1, entries - 1)
        cases[f"palette{depth}"] = encode_png(indices, 3, depth, palette=palette)
    palette = RNG.integers(0, 256, size=(16, 3))
    alphas = bytes(RNG.integers(0, 256, size=10).astype(np.uint8))  # tRNS shorter than PLTE
    cases["palette4_trns"] = encode_png(smooth_field(h, w, 1, 15), 3, 4, palette=palette, trns=alphas)
    cases["palette8_trns"] = encode_png(smooth_field(h, w, 1, 255), 3, 8,
                                        palette=RNG.integers(0, 256, size=(256, 3)),
                                        trns=bytes(RNG.integers(0, 256, size=256).astype(np.uint8)))
    # Adam7: sizes that leave some passes empty-ish and odd edges.
    cases["gray2_interlaced"] = encode_png(smooth_field(11, 13, 1, 3), 0, 2, interlace=True)
    cases["gray8_interlaced"] = encode_png(smooth_field(h, w, 1, 255), 0, 8, interlace=True)
    cases["rgb16_interlaced"] = encode_png(smooth_field(h, w, 3, 65535), 2, 16, interlace=True)
    cases["rgba8_interlaced"] = encode_png(smooth_field(h, w, 4, 255), 6, 8, interlace=True)
    cases["palette4_trns_interlaced"] = encode_png(smooth_field(h, w, 1, 15), 3, 4, palette=palette,
                                                   trns=alphas, interlace=True)
    cases["tiny_1x1_interlaced"] = encode_png(smooth_field(1, 1, 3, 255), 2, 8, interlace=True)
    # Indices past a 10-entry PLTE (Pillow: black). Deterministic, so the RNG stream is unchanged.
    cases["palette8_short_plte"] = encode_png(np.arange(h * w).reshape(h, w, 1) % 256, 3, 8,
                                              palette=np.arange(30).reshape(10, 3) * 7)
    return cases


# ---------------------------------------------------------------------------------------------
# JPEGs.

YCCK_WRITER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
/* usage: ycck_writer W H in.cmyk out.jpg  -- raw CMYK bytes (stored values) -> Adobe YCCK JPEG */
int main(int argc, char **argv) {
    int w = atoi(argv[1]), h = atoi(argv[2]);
    unsigned char *data = malloc((size_t)w * h * 4);
    FILE *in = fopen(argv[3], "rb");
    if (fread(data, 1, (size_t)w * h * 4, in) != (size_t)w * h * 4) return 1;
    fclose(in);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *out = fopen(argv[4], "wb");
    jpeg_stdio_dest(&c, out);
    c.image_width = w; c.image_height = h; c.input_components = 4; c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, JCS_YCCK);   /* also writes the Adobe marker with transform 2 */
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = data + (size_t)c.next_scanline * w * 4;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    fclose(out);
    return 0;
}
"""


def encode_pil(image, **options):
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        image.save(f.name, "JPEG", **options)
        return open(f.name, "rb").read()


def jpeg_cases():
    h, w = 37, 45  # not multiples of the 16-pixel MCU
    rgb = Image.fromarray(smooth_field(h, w, 3, 255).astype(np.uint8), "RGB")
    gray = Image.fromarray(smooth_field(h, w, 1, 255)[:, :, 0].astype(np.uint8), "L")
    cmyk_stored = smooth_field(h, w, 4, 255).astype(np.uint8)
    cases = {
        "gray": encode_pil(gray, quality=90),
        "rgb420": encode_pil(rgb, quality=90, subsampling=2),
        "rgb422": encode_pil(rgb, quality=90, subsampling=1),
        "rgb444": encode_pil(rgb, quality=90, subsampling=0),
        "rgb420_progressive": encode_pil(rgb, quality=85, progressive=True),
        "gray_progressive": encode_pil(gray, quality=85, progressive=True),
        # Pillow writes CMYK with the Adobe marker, transform 0, values inverted.
        "cmyk_adobe": encode_pil(Image.fromarray(cmyk_stored, "CMYK"), quality=90),
    }
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "ycck_writer.c")
        binary = os.path.join(tmp, "ycck_writer")
        with open(source, "w") as f:
            f.write(YCCK_WRITER)
        subprocess.run(["cc", "-O1", "-o", binary, source, "-ljpeg"], check=True)
        raw = os.path.join(tmp, "in.cmyk")
        cmyk_stored.tofile(raw)
        target = os.path.join(tmp, "out.jpg")
        subprocess.run([binary, str(w), str(h), raw, target], check=True)
        cases["ycck_adobe"] = open(target, "rb").read()
    return cases


# ---------------------------------------------------------------------------------------------

def decode_fixtures():
    entries = []
    for name, data in list(png_cases().items()) + [(k, v) for k, v in jpeg_cases().items()]:
        extension = "png" if data[:4] == b"\x89PNG" else "jpg"
        relative = write(f"decode/{name}.{extension}", data)
        array, error = pil_rgb(os.path.join(OUT, relative))
        assert error is None, (name, error)
        with Image.open(os.path.join(OUT, relative)) as img:
            mode = img.mode
        expected = write(f"decode/{name}.rgb", array.tobytes())
        entries.append({"file": relative, "expected": expected, "pil_mode": mode,
                        "width": array.shape[1], "height": array.shape[0], "sha256": sha256(array)})
    return entries


def seed_photos():
    entries = []
    for name in sorted(os.listdir(SEEDS)):
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        array, error = pil_rgb(os.path.join(SEEDS, name))
        assert error is None, (name, error)
        entries.append({"file": f"seeds/images/{name}", "width": array.shape[1], "height": array.shape[0],
                        "sha256": sha256(array)})
    return entries


def resize_fixtures():
    """Small synthetic source → many target sizes and every filter, full expected bytes."""
    source = smooth_field(47, 61, 3, 255).astype(np.uint8)
    # Sharp edges and saturated blocks make the negative lobes clip.
    source[10:20, 10:30] = 255
    source[12:18, 15:25] = 0
    source_file = write("resize/source_61x47.rgb", source.tobytes())
    image = Image.fromarray(source, "RGB")
    targets = [(26, 20, "bicubic"), (61, 20, "bicubic"), (20, 47, "bicubic"), (150, 111, "bicubic"),
               (7, 3, "bicubic"), (1, 1, "bicubic"), (224, 13, "bicubic"), (60, 46, "bicubic"),
               # Pillow >= 13 runs the vertical pass first here (height shrinks > 2x the width's pixels).
               (50, 5, "bicubic"), (55, 20, "bicubic"), (30, 46, "bicubic"), (55, 5, "lanczos"),
               (33, 25, "bilinear"), (33, 25, "lanczos"), (33, 25, "box"), (33, 25, "hamming"),
               (97, 80, "lanczos"), (97, 80, "bilinear")]
    filters = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}
    entries = []
    for width, height, filter_name in targets:
        result = np.asarray(image.resize((width, height), filters[filter_name]))
        expected = write(f"resize/{width}x{height}_{filter_name}.rgb", result.tobytes())
        entries.append({"width": width, "height": height, "filter": filter_name, "expected": expected})
    return {"source": source_file, "source_width": 61, "source_height": 47, "cases": entries}


def expand2square(pil_img, background_color):
    """LLaVA's llava/mm_utils.py expand2square (image_aspect_ratio == "pad")."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


def make_processor(resolution):
    # llava-hf / openai clip-vit-large-patch14(-336) preprocessor_config.json, explicitly slow.
    config = {"do_resize": True, "size": {"shortest_edge": resolution}, "resample": 3,
              "do_center_crop": True, "crop_size": {"height": resolution, "width": resolution},
              "do_rescale": True, "rescale_factor": 0.00392156862745098, "do_normalize": True,
              "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True}
    processor = SlowCLIPImageProcessor(**config)
    assert getattr(processor, "backend", "pil") == "pil", processor
    return processor, config


def clip_fixtures():
    # (photo, resolution, pad, crop box applied first or None). The 260x640 strip is taller than
    # 2:1, so its downscale takes Pillow 13's vertical-first path.
    cases = [("chelsea_cat.jpg", 224, False, None), ("chelsea_cat.jpg", 336, True, None),
             ("grace_hopper.jpg", 336, False, None), ("grace_hopper.jpg", 224, True, None),
             ("china_pagoda.jpg", 336, True, None), ("retina_fundus.jpg", 224, False, (190, 0, 450, 640))]
    entries = []
    for name, resolution, pad, box in cases:
        processor, config = make_processor(resolution)
        with Image.open(os.path.join(SEEDS, name)) as img:
            rgb = img.convert("RGB")
        if box is not None:
            rgb = rgb.crop(box)
        background = tuple(int(x * 255) for x in processor.image_mean)
        assert background == (122, 116, 104), background
        prepared_input = expand2square(rgb, background) if pad else rgb
        pixel_values = processor.preprocess(prepared_input, return_tensors="np")["pixel_values"][0]
        assert pixel_values.dtype == np.float32 and pixel_values.shape == (3, resolution, resolution)

        # The uint8 image the tensor is made from, via the processor's own steps.
        array = np.asarray(prepared_input)
        height, width = array.shape[:2]
        short, long = min(width, height), max(width, height)
        new_long = int(resolution * long / short)
        size = (resolution, new_long) if width <= height else (new_long, resolution)  # (w, h)
        resized = np.asarray(prepared_input.resize(size, Image.Resampling.BICUBIC))
        top, left = (resized.shape[0] - resolution) // 2, (resized.shape[1] - resolution) // 2
        cropped = resized[top:top + resolution, left:left + resolution]
        # Check that it is the processor's input, exactly: rescale (float64 → float32) + normalize (float32).
        rescaled = (cropped.astype(np.float64) * config["rescale_factor"]).astype(np.float32)
        again = ((rescaled - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)).transpose(2, 0, 1)
        assert np.array_equal(again, pixel_values), f"{name}: pipeline reconstruction differs"

        stem = f"clip/{os.path.splitext(name)[0]}_{resolution}{'_pad' if pad else ''}{'_strip' if box else ''}"
        cropped_png = write(f"{stem}.png", encode_png(cropped, 2, 8))
        flat = pixel_values.reshape(-1)
        stride = 997
        entries.append({
            "file": f"seeds/images/{name}", "resolution": resolution, "pad": pad, "crop_box": box,
            "resized_width": size[0], "resized_height": size[1], "resized_sha256": sha256(resized),
            "prepared_png": cropped_png, "pixel_values_sha256": sha256(pixel_values.astype("<f4")),
            "sample_stride": stride, "sample_values": [float(v) for v in flat[::stride]],
        })
    return entries


def bad_fixtures(decode_entries):
    """Inputs that must fail (or, where Pillow accepts them, decode identically). Records Pillow's verdict."""
    png = open(os.path.join(OUT, "decode/rgb8.png"), "rb").read()
    jpeg = open(os.path.join(OUT, "decode/rgb420.jpg"), "rb").read()
    progressive = open(os.path.join(OUT, "decode/rgb420_progressive.jpg"), "rb").read()

    def png_with_size(width, height):
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) +
                png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))

    def jpeg_with_size(width, height):
        at = jpeg.index(b"\xff\xc0")
        return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]

    iend = png.rindex(b"IEND") - 4
    idat_crc = png.index(b"IDAT") - 4
    idat_length = struct.unpack(">I", png[idat_crc:idat_crc + 4])[0]
    crc_at = idat_crc + 8 + idat_length
    bad_crc = png[:crc_at] + bytes([png[crc_at] ^ 0xFF]) + png[crc_at + 1:]
    ihdr_crc_at = 8 + 8 + 13
    bad_ihdr_crc = png[:ihdr_crc_at] + bytes([png[ihdr_crc_at] ^ 0xFF]) + png[ihdr_crc_at + 1:]
    cases = {
        "zero_bytes.png": b"",
        "gif_named.png": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        "text_named.jpg": b"<html>not an image</html>\n",
        "png_signature_only.png": png[:8],
        "png_truncated_half.png": png[: len(png) // 2],
        "png_truncated_in_header.png": png[:20],
        "png_bad_idat_crc.png": bad_crc,  # Pillow does not check IDAT CRCs
        "png_bad_ihdr_crc.png": bad_ihdr_crc,
        "png_no_iend.png": png[:iend],
        "png_huge_side.png": png_with_size(20000, 100),
        "png_huge_pixels.png": png_with_size(12000, 9000),
        "png_zero_width.png": png_with_size(0, 10),
        "jpeg_soi_only.jpg": jpeg[:3],
        "jpeg_truncated_half.jpg": jpeg[: len(jpeg) // 2],
        "jpeg_truncated_in_header.jpg": jpeg[:100],
        "jpeg_progressive_truncated.jpg": progressive[: len(progressive) * 2 // 3],
        "jpeg_no_eoi.jpg": jpeg[:-2],
        "jpeg_huge_side.jpg": jpeg_with_size(20000, 20000),
        "jpeg_huge_pixels.jpg": jpeg_with_size(12000, 9000),
    }
    entries = []
    for name, data in cases.items():
        relative = write(f"bad/{name}", data)
        path = os.path.join(OUT, relative)
        Image.MAX_IMAGE_PIXELS = None  # judge structure, not Pillow's own bomb limit
        array, error = pil_rgb(path)
        entry = {"file": relative, "pil_accepts": error is None, "pil_error": error}
        if array is not None:
            entry["sha256"] = sha256(array)
        entries.append(entry)
    return entries


def main():
    os.makedirs(OUT, exist_ok=True)
    decode = decode_fixtures()
    manifest = {
        "generator": "tools/reference/make_image_fixtures.py",
        "versions": {"pillow": PIL.__version__, "numpy": np.__version__, "transformers": transformers.__version__,
                     "pillow_libjpeg_turbo": features.version("libjpeg_turbo"),
                     "pillow_zlib": features.version("zlib")},
        "clip_processor": f"transformers {SlowCLIPImageProcessor.__name__} (slow, Pillow/numpy backend)",
        "decode": decode,
        "photos": seed_photos(),
        "resize": resize_fixtures(),
        "clip": clip_fixtures(),
        "bad": bad_fixtures(decode),
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT}: {total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
