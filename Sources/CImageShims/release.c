#include "ForgeImageShims.h"

#include <stdlib.h>

void forge_image_release(ForgeDecodedImage *image) {
    if (image == NULL) return;
    free(image->pixels);
    image->pixels = NULL;
}
