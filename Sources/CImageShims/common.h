// Helpers shared by the JPEG and PNG wrappers (not part of the public header).
#ifndef FORGE_IMAGE_SHIMS_COMMON_H
#define FORGE_IMAGE_SHIMS_COMMON_H

#include "ForgeImageShims.h"

#include <stdarg.h>
#include <stdio.h>

static inline void forge_set_message(ForgeDecodedImage *out, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(out->message, FORGE_IMAGE_MESSAGE_CAPACITY, format, arguments);
    va_end(arguments);
}

/// Refuses empty and absurd sizes before anything is allocated.
static inline ForgeImageStatus forge_check_size(int64_t width, int64_t height, ForgeImageLimits limits,
                                                ForgeDecodedImage *out) {
    if (width <= 0 || height <= 0) {
        forge_set_message(out, "image has an empty size %lldx%lld", (long long)width, (long long)height);
        return FORGE_IMAGE_TOO_LARGE;
    }
    if (width > limits.maxSide || height > limits.maxSide) {
        forge_set_message(out, "image is %lldx%lld, over the limit of %lld pixels per side",
                          (long long)width, (long long)height, (long long)limits.maxSide);
        return FORGE_IMAGE_TOO_LARGE;
    }
    if (width * height > limits.maxPixels) {
        forge_set_message(out, "image is %lldx%lld = %lld pixels, over the limit of %lld",
                          (long long)width, (long long)height, (long long)(width * height),
                          (long long)limits.maxPixels);
        return FORGE_IMAGE_TOO_LARGE;
    }
    return FORGE_IMAGE_OK;
}

#endif
