// Thin C wrappers around libjpeg (libjpeg-turbo) and libpng.
//
// Both libraries report errors by longjmp. A longjmp must never cross Swift frames, so every
// setjmp/longjmp pair lives inside one call of these functions: Swift calls in, gets a status
// code, a message and (on success) a malloc'd RGB buffer, and never sees a jump.
#ifndef FORGE_IMAGE_SHIMS_H
#define FORGE_IMAGE_SHIMS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FORGE_IMAGE_OK = 0,
    /// The codec rejected the data; `message` holds its text.
    FORGE_IMAGE_CORRUPT = 1,
    /// The data ended before the image did.
    FORGE_IMAGE_TRUNCATED = 2,
    /// The header declares a size over the caller's limits (or zero).
    FORGE_IMAGE_TOO_LARGE = 3,
    /// A valid file in a layout we do not decode (e.g. a 2-component JPEG).
    FORGE_IMAGE_UNSUPPORTED = 4,
    FORGE_IMAGE_OUT_OF_MEMORY = 5,
} ForgeImageStatus;

enum { FORGE_IMAGE_MESSAGE_CAPACITY = 256 };

/// Limits checked against the header before any pixel buffer is allocated.
typedef struct {
    int64_t maxSide;
    int64_t maxPixels;
} ForgeImageLimits;

typedef struct {
    int32_t width;
    int32_t height;
    /// `[height, width, 3]` interleaved RGB, malloc'd; release with `forge_image_release`.
    uint8_t *pixels;
    /// Describes the source layout on success ("JPEG CMYK (Adobe inverted)", "PNG palette 4-bit
    /// interlaced", ...), the error on failure. Always NUL-terminated.
    char message[FORGE_IMAGE_MESSAGE_CAPACITY];
} ForgeDecodedImage;

/// Decodes a JPEG held in memory to RGB, converting like Pillow's `Image.convert("RGB")`.
ForgeImageStatus forge_decode_jpeg(const uint8_t *bytes, size_t count, ForgeImageLimits limits,
                                   ForgeDecodedImage *out);

/// Decodes a PNG held in memory to RGB, converting like Pillow's `Image.convert("RGB")`.
ForgeImageStatus forge_decode_png(const uint8_t *bytes, size_t count, ForgeImageLimits limits,
                                  ForgeDecodedImage *out);

/// Frees `image->pixels` (safe on a zeroed or already released image).
void forge_image_release(ForgeDecodedImage *image);

#endif
