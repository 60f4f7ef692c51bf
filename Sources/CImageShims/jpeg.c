// JPEG → RGB through libjpeg(-turbo), with the error manager turned into a status code.
//
// Conversions follow Pillow so that fixtures compare byte for byte:
// - 1 component: grayscale, replicated to R = G = B.
// - 3 components: libjpeg's own YCbCr/RGB decision (JFIF, Adobe transform, component ids).
// - 4 components (CMYK, or YCCK which libjpeg turns into CMYK): Pillow always assumes Adobe's
//   inverted convention ("CMYK;I"), so ink = 255 - stored; then its `cmyk2rgb`:
//   R = (255 - K) - round((255 - K) * C / 255), with the integer rounding of `MULDIV255`.
// A "Premature end of JPEG file" is an error, even when only the EOI marker is missing (Pillow
// raises "image file is truncated" for both); libjpeg's other warnings are tolerated, as in Pillow.
#include "ForgeImageShims.h"
#include "common.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr base;  // must stay first: libjpeg hands back a pointer to it
    jmp_buf jump;
    ForgeImageStatus status;
} ForgeJPEGErrorManager;

static void forge_jpeg_error_exit(j_common_ptr cinfo) {
    ForgeJPEGErrorManager *manager = (ForgeJPEGErrorManager *)cinfo->err;
    manager->status = (cinfo->err->msg_code == JERR_OUT_OF_MEMORY) ? FORGE_IMAGE_OUT_OF_MEMORY
                                                                   : FORGE_IMAGE_CORRUPT;
    longjmp(manager->jump, 1);
}

static void forge_jpeg_emit_message(j_common_ptr cinfo, int level) {
    ForgeJPEGErrorManager *manager = (ForgeJPEGErrorManager *)cinfo->err;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            manager->status = FORGE_IMAGE_TRUNCATED;
            longjmp(manager->jump, 1);
        }
    }
    // Trace messages and tolerated warnings are dropped: a library must not write to stderr.
}

static void forge_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static inline uint8_t forge_muldiv255(int a, int b) {
    int product = a * b + 128;
    return (uint8_t)(((product >> 8) + product) >> 8);
}

static const char *forge_jpeg_colour_name(J_COLOR_SPACE space) {
    switch (space) {
        case JCS_GRAYSCALE: return "grayscale";
        case JCS_YCbCr: return "YCbCr";
        case JCS_RGB: return "RGB";
        case JCS_CMYK: return "CMYK";
        case JCS_YCCK: return "YCCK";
        default: return "unknown colour space";
    }
}

ForgeImageStatus forge_decode_jpeg(const uint8_t *bytes, size_t count, ForgeImageLimits limits,
                                   ForgeDecodedImage *out) {
    struct jpeg_decompress_struct cinfo;
    ForgeJPEGErrorManager manager;
    // Written between setjmp and a possible longjmp, so volatile (C11 7.13.2.1).
    uint8_t *volatile pixels = NULL;
    JSAMPLE *volatile scanline = NULL;

    memset(out, 0, sizeof(*out));
    cinfo.err = jpeg_std_error(&manager.base);
    manager.base.error_exit = forge_jpeg_error_exit;
    manager.base.emit_message = forge_jpeg_emit_message;
    manager.base.output_message = forge_jpeg_output_message;
    manager.status = FORGE_IMAGE_CORRUPT;

    if (setjmp(manager.jump)) {
        if (manager.status == FORGE_IMAGE_TRUNCATED) {
            forge_set_message(out, "JPEG data ends before the image does (truncated file)");
        } else {
            char text[JMSG_LENGTH_MAX];
            (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
            forge_set_message(out, "libjpeg: %s", text);
        }
        jpeg_destroy_decompress(&cinfo);
        free(scanline);
        free(pixels);
        return manager.status;
    }

    jpeg_create_decompress(&cinfo);
    // Progressive images keep every coefficient in memory (2 bytes per sample, before the RGB
    // output); cap libjpeg's whole-image buffers so a 100 Mpx progressive file fails cleanly with
    // "insufficient memory"/"backing store" instead of exhausting the machine.
    cinfo.mem->max_memory_to_use = 1024L * 1024L * 1024L;
    if (count > (size_t)(unsigned long)-1) count = (size_t)(unsigned long)-1;
    jpeg_mem_src(&cinfo, bytes, (unsigned long)count);
    jpeg_read_header(&cinfo, TRUE);

    ForgeImageStatus sizeStatus = forge_check_size(cinfo.image_width, cinfo.image_height, limits, out);
    if (sizeStatus != FORGE_IMAGE_OK) {
        jpeg_destroy_decompress(&cinfo);
        return sizeStatus;
    }

    J_COLOR_SPACE sourceSpace = cinfo.jpeg_color_space;
    switch (cinfo.num_components) {
        case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
        case 3: cinfo.out_color_space = JCS_RGB; break;
        case 4: cinfo.out_color_space = JCS_CMYK; break;
        default:
            forge_set_message(out, "JPEG with %d colour components is not supported", cinfo.num_components);
            jpeg_destroy_decompress(&cinfo);
            return FORGE_IMAGE_UNSUPPORTED;
    }
    int progressive = jpeg_has_multiple_scans(&cinfo);
    jpeg_start_decompress(&cinfo);

    const size_t width = cinfo.output_width;
    const size_t height = cinfo.output_height;
    const int components = cinfo.output_components;
    pixels = malloc(width * height * 3);
    if (components != 3) scanline = malloc(width * (size_t)components);
    if (pixels == NULL || (components != 3 && scanline == NULL)) {
        free(scanline);
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        forge_set_message(out, "out of memory for a %zux%zu image", width, height);
        return FORGE_IMAGE_OUT_OF_MEMORY;
    }

    while (cinfo.output_scanline < height) {
        uint8_t *row = pixels + (size_t)cinfo.output_scanline * width * 3;
        JSAMPROW target = (components == 3) ? row : scanline;
        if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
            manager.status = FORGE_IMAGE_TRUNCATED;
            longjmp(manager.jump, 1);
        }
        if (components == 1) {
            for (size_t x = 0; x < width; x++) {
                uint8_t value = scanline[x];
                row[3 * x] = value;
                row[3 * x + 1] = value;
                row[3 * x + 2] = value;
            }
        } else if (components == 4) {
            for (size_t x = 0; x < width; x++) {
                const JSAMPLE *stored = scanline + 4 * x;
                int notBlack = stored[3];  // 255 - K with K = 255 - stored
                for (int c = 0; c < 3; c++) {
                    int ink = 255 - stored[c];
                    row[3 * x + c] = (uint8_t)(notBlack - forge_muldiv255(ink, notBlack));
                }
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(scanline);

    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->pixels = pixels;
    forge_set_message(out, "JPEG %s%s%s", forge_jpeg_colour_name(sourceSpace),
                      components == 4 ? " (Adobe inverted)" : "", progressive ? " progressive" : "");
    return FORGE_IMAGE_OK;
}
