// PNG → RGB through libpng, with png_error's longjmp turned into a status code.
//
// Conversions follow Pillow's `Image.open(...).convert("RGB")` so fixtures compare byte for byte:
// - gray 1/2/4-bit: expanded to 8 bits by bit replication (Pillow's "L;2" etc. scale the same);
// - gray 16-bit: Pillow opens it as "I;16" and converting that to RGB *clamps* to 255 rather than
//   scaling (values ≥ 255 become white) — reproduced on purpose, since this is what a Python
//   LLaVA pipeline sees;
// - other 16-bit images (gray+alpha, RGB, RGBA): the high byte of each sample;
// - palette: looked up to RGB; tRNS and alpha channels are dropped without compositing;
// - gAMA/iCCP/sRGB are ignored (Pillow applies no colour management on convert).
// CRCs are checked like Pillow: every chunk before the first IDAT must match (a damaged header is
// an error), IDAT CRCs are not checked (zlib's Adler-32 still guards the pixels), and damage after
// the last row (trailing chunks, a missing IEND) is ignored.
#include "ForgeImageShims.h"
#include "common.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

typedef struct {
    const uint8_t *bytes;
    size_t count;
    size_t offset;
    ForgeImageStatus status;
    char message[FORGE_IMAGE_MESSAGE_CAPACITY];
} ForgePNGSource;

static void forge_png_read(png_structp png, png_bytep destination, size_t length) {
    ForgePNGSource *source = (ForgePNGSource *)png_get_io_ptr(png);
    if (length > source->count - source->offset) {
        source->status = FORGE_IMAGE_TRUNCATED;
        png_error(png, "PNG data ends before the image does (truncated file)");
    }
    memcpy(destination, source->bytes + source->offset, length);
    source->offset += length;
}

static void forge_png_error(png_structp png, png_const_charp text) {
    ForgePNGSource *source = (ForgePNGSource *)png_get_error_ptr(png);
    if (source->status == FORGE_IMAGE_TRUNCATED) {
        snprintf(source->message, sizeof source->message, "%s", text);
    } else {
        source->status = FORGE_IMAGE_CORRUPT;
        snprintf(source->message, sizeof source->message, "libpng: %s", text);
    }
    png_longjmp(png, 1);
}

static void forge_png_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;  // tolerated, and a library must not write to stderr
}

static uint32_t forge_read_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/// Verifies the CRC of every chunk before the first IDAT. Chunks running past the end are left
/// to libpng, which reports the truncation.
static ForgeImageStatus forge_png_check_header_crcs(const uint8_t *bytes, size_t count, ForgeDecodedImage *out) {
    size_t offset = 8;
    while (count - offset >= 12) {
        uint32_t length = forge_read_be32(bytes + offset);
        const uint8_t *type = bytes + offset + 4;
        if (memcmp(type, "IDAT", 4) == 0) break;
        if (length > count - offset - 12) break;
        uint32_t stored = forge_read_be32(bytes + offset + 8 + length);
        uint32_t actual = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, length + 4);
        if (stored != actual) {
            char name[5];
            for (int i = 0; i < 4; i++) name[i] = (type[i] >= 32 && type[i] < 127) ? (char)type[i] : '?';
            name[4] = 0;
            forge_set_message(out, "bad CRC in PNG chunk %s at byte %zu", name, offset);
            return FORGE_IMAGE_CORRUPT;
        }
        offset += 12 + (size_t)length;
    }
    return FORGE_IMAGE_OK;
}

static const char *forge_png_colour_name(int colourType) {
    switch (colourType) {
        case PNG_COLOR_TYPE_GRAY: return "gray";
        case PNG_COLOR_TYPE_GRAY_ALPHA: return "gray+alpha";
        case PNG_COLOR_TYPE_RGB: return "RGB";
        case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
        case PNG_COLOR_TYPE_PALETTE: return "palette";
        default: return "unknown colour type";
    }
}

/// One decoded row (after libpng's transforms) → interleaved RGB.
static void forge_png_row_to_rgb(const uint8_t *row, int channels, int depth, size_t width, uint8_t *rgb) {
    if (depth == 16) {  // only gray 16-bit arrives here unstripped
        for (size_t x = 0; x < width; x++) {
            unsigned value = ((unsigned)row[2 * x] << 8) | row[2 * x + 1];
            uint8_t clamped = value > 255 ? 255 : (uint8_t)value;
            rgb[3 * x] = clamped;
            rgb[3 * x + 1] = clamped;
            rgb[3 * x + 2] = clamped;
        }
        return;
    }
    switch (channels) {
        case 1:
        case 2:
            for (size_t x = 0; x < width; x++) {
                uint8_t value = row[channels * x];
                rgb[3 * x] = value;
                rgb[3 * x + 1] = value;
                rgb[3 * x + 2] = value;
            }
            break;
        case 3:
            memcpy(rgb, row, width * 3);
            break;
        default:
            for (size_t x = 0; x < width; x++) {
                rgb[3 * x] = row[4 * x];
                rgb[3 * x + 1] = row[4 * x + 1];
                rgb[3 * x + 2] = row[4 * x + 2];
            }
            break;
    }
}

ForgeImageStatus forge_decode_png(const uint8_t *bytes, size_t count, ForgeImageLimits limits,
                                  ForgeDecodedImage *out) {
    ForgePNGSource source = {bytes, count, 0, FORGE_IMAGE_OK, {0}};
    png_structp png = NULL;
    png_infop info = NULL;
    // Written between setjmp and a possible longjmp, so volatile (C11 7.13.2.1).
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile decoded = NULL;
    png_bytep *volatile rows = NULL;
    volatile int allRowsRead = 0;

    memset(out, 0, sizeof(*out));
    ForgeImageStatus crcStatus = forge_png_check_header_crcs(bytes, count, out);
    if (crcStatus != FORGE_IMAGE_OK) return crcStatus;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, forge_png_error, forge_png_warning);
    if (png != NULL) info = png_create_info_struct(png);
    if (png == NULL || info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        forge_set_message(out, "out of memory creating the PNG reader");
        return FORGE_IMAGE_OUT_OF_MEMORY;
    }

    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        free(decoded);
        if (allRowsRead) {
            // Every pixel arrived; only trailing chunks (or IEND) are damaged or missing.
            out->pixels = pixels;
            return FORGE_IMAGE_OK;
        }
        free(pixels);
        forge_set_message(out, "%s", source.message);
        return source.status == FORGE_IMAGE_OK ? FORGE_IMAGE_CORRUPT : source.status;
    }

    png_set_read_fn(png, &source, forge_png_read);
    // Header CRCs were verified above; IDAT CRCs are not checked (as in Pillow).
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    // We apply our own, smaller limits below with a clearer message.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int depth = 0, colourType = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &depth, &colourType, &interlace, NULL, NULL);
    ForgeImageStatus sizeStatus = forge_check_size(width, height, limits, out);
    if (sizeStatus != FORGE_IMAGE_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return sizeStatus;
    }

    const int gray16 = (colourType == PNG_COLOR_TYPE_GRAY && depth == 16);
    if (colourType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colourType == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16) png_set_strip_16(png);
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const int channels = png_get_channels(png, info);
    const int outDepth = png_get_bit_depth(png, info);
    const size_t rowBytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (outDepth != 8 && !(outDepth == 16 && gray16 && channels == 1)) ||
        rowBytes < (size_t)width * (size_t)channels * (size_t)(outDepth / 8)) {
        png_destroy_read_struct(&png, &info, NULL);
        forge_set_message(out, "PNG %s %d-bit decodes to an unexpected layout (%d channels, %d bits)",
                          forge_png_colour_name(colourType), depth, channels, outDepth);
        return FORGE_IMAGE_UNSUPPORTED;
    }

    pixels = malloc((size_t)width * height * 3);
    // Interlaced images need the whole decoded image; others go row by row through one buffer.
    decoded = malloc(passes > 1 ? rowBytes * height : rowBytes);
    if (passes > 1) rows = malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || decoded == NULL || (passes > 1 && rows == NULL)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        free(decoded);
        free(pixels);
        forge_set_message(out, "out of memory for a %ux%u image", (unsigned)width, (unsigned)height);
        return FORGE_IMAGE_OUT_OF_MEMORY;
    }
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    forge_set_message(out, "PNG %s %d-bit%s%s", forge_png_colour_name(colourType), depth,
                      png_get_valid(png, info, PNG_INFO_tRNS) ? " tRNS" : "",
                      interlace == PNG_INTERLACE_ADAM7 ? " interlaced" : "");

    if (passes > 1) {
        for (png_uint_32 y = 0; y < height; y++) rows[y] = decoded + rowBytes * y;
        png_read_image(png, rows);
        for (png_uint_32 y = 0; y < height; y++) {
            forge_png_row_to_rgb(rows[y], channels, outDepth, width, pixels + (size_t)y * width * 3);
        }
    } else {
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(png, decoded, NULL);
            forge_png_row_to_rgb(decoded, channels, outDepth, width, pixels + (size_t)y * width * 3);
        }
    }
    allRowsRead = 1;
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(decoded);
    out->pixels = pixels;
    return FORGE_IMAGE_OK;
}
