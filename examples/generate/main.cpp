// hired's LLaVA-Next runtime: the `mini` preset (LLaVA-Next's token geometry, small widths,
// random weights), one image, HiRED at 20% before the projector, four greedy tokens.
//   generate IMAGE
#include "hired/llava/model.hpp"

#include <cstdio>
#include <filesystem>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: generate IMAGE\n");
    return 2;
  }
  using namespace hired::llava;
  const LlavaNextModel model = LlavaNextModel::random(LlavaNextConfig::preset("mini"), /*seed=*/0);
  const std::vector<std::filesystem::path> files{argv[1]};
  const ImageInputs images = read_images(files, model.config());

  hired::DropConfig config;  // exact mode, alpha 0.5, newline after every row
  config.budget = hired::Budget::rate(0.2);
  const hired::TokenDropper dropper(config);
  const EncodedImages encoded = model.encode_images(images, &dropper);

  const std::vector<std::vector<std::int64_t>> prompts{default_prompt_ids(1, model.config())};
  const PromptEmbeddings input = model.merge(prompts, encoded);
  const Generation out = generate_greedy(model.language(), input.embeds, input.lengths,
                                         {.max_new_tokens = 4, .stop_at_eos = false});
  std::printf("generate: %lld visual tokens kept; tokens",
              static_cast<long long>(encoded.rows.visual_tokens[0]));
  for (const std::int64_t id : out.tokens[0]) std::printf(" %lld", static_cast<long long>(id));
  std::printf("\n");
}
