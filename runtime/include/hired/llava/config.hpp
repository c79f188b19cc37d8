// The runtime's model configuration: the checkpoint description that the io layer reads from
// a Hugging Face config.json (hired/io/llava_config.hpp), named as part of hired::llava.
#pragma once

#include "hired/io/llava_config.hpp"

namespace hired::llava {
using io::LlavaNextConfig;
using io::TextConfig;
using io::VisionConfig;
}  // namespace hired::llava
