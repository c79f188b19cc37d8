// Fuzz target: the tokenizer loader on the files it reads from a checkpoint directory,
// tokenizer_config.json and tokenizer.model (sentencepiece), then the model used: a prompt with
// image markers encoded both ways (legacy or not), every piece, and ids decoded.
//
// Input layout (libFuzzer's FuzzedDataProvider): tokenizer_config.json's text up to the first
// backslash that is not doubled ("\\" stands for one backslash), then the model's bytes. An
// empty config text means no tokenizer_config.json. fuzz/make_corpus.py writes seeds this way.
#include "support.hpp"

#include "hired/io/tokenizer.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const std::string config = input.ConsumeRandomLengthString(size);
  const std::vector<std::uint8_t> model = input.ConsumeRemainingBytes<std::uint8_t>();

  const std::filesystem::path dir = hired_fuzz::scratch_dir();
  std::filesystem::remove(dir / "tokenizer_config.json");
  if (!config.empty()) hired_fuzz::write_scratch("tokenizer_config.json", config.data(), config.size());
  hired_fuzz::write_scratch("tokenizer.model", model.data(), model.size());

  hired_fuzz::reject_bad_input([&] {
    const hired::io::Tokenizer tokenizer = hired::io::Tokenizer::load_dir(dir);
    const std::int64_t vocab = tokenizer.vocab_size();
    (void)(tokenizer.bos_id() + tokenizer.eos_id() + tokenizer.unk_id());
    // Each use on its own: a model without a BOS piece refuses add_bos, and the rest still runs.
    hired_fuzz::reject_bad_input([&] {
      (void)tokenizer.encode_prompt(
          "USER: <image>\nWhat is shown? <image> ASSISTANT: \xe2\x96\x81 \xf0\x9f\x98\x80", vocab);
    });
    hired_fuzz::reject_bad_input([&] { (void)tokenizer.encode("plain text", /*add_bos=*/false); });
    std::vector<std::int64_t> ids;
    for (std::int64_t id = 0; id < std::min<std::int64_t>(vocab, 1024); ++id) {
      (void)tokenizer.piece(id);
      ids.push_back(id);
    }
    ids.push_back(vocab);  // beyond the vocabulary (the image token): no text
    (void)tokenizer.decode(ids);
  });
  return 0;
}
