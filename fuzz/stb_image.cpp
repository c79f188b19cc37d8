// stb_image's implementation for the fuzz targets: the same header Debian's libstb is built
// from (libstb-dev), compiled here so that the sanitizers and libFuzzer's coverage see inside
// the decoders. The product links libstb itself.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
