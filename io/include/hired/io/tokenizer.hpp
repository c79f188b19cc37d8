// The Llama/Mistral sentencepiece tokenizer of a llava-hf checkpoint (`tokenizer.model`),
// producing the ids Hugging Face transformers' LlamaTokenizer gives for LLaVA prompts.
//
//   auto tok = Tokenizer::load_dir(model_dir);        // tokenizer.model (+ tokenizer_config.json)
//   auto ids = tok.encode_prompt("USER: <image>\nWhat is this? ASSISTANT:", config.image_token_id);
//   std::string text = tok.decode(generated_ids);
//
// Prompts: the text is split on "<image>", each piece encoded by sentencepiece and the image
// token id put between them, BOS first. As in transformers 5 (LlamaTokenizer, `legacy: false`,
// the llava-hf setting), only the first piece of text gets sentencepiece's dummy-prefix space;
// text right after an `<image>` does not ("<image>\nWhat" -> image, "\n", "What", not "▁\n").
// With `legacy: true` every piece gets it. sentencepiece stays out of this header.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hired::io {

struct TokenizerOptions {
  /// transformers' `legacy` flag of LlamaTokenizer: true = dummy prefix on every text piece.
  bool legacy = false;
};

class Tokenizer {
 public:
  /// Loads a sentencepiece model file. Throws hired::Error naming the file when it is missing,
  /// unreadable, empty or not a sentencepiece model.
  static Tokenizer load(const std::filesystem::path& model_file, TokenizerOptions options = {});
  /// `dir/tokenizer.model`, with `legacy` from `dir/tokenizer_config.json` when that file says
  /// (transformers 5's default, false, otherwise).
  static Tokenizer load_dir(const std::filesystem::path& dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// sentencepiece's encoding of `text` (dummy prefix included), BOS first if `add_bos`.
  std::vector<std::int64_t> encode(std::string_view text, bool add_bos = true) const;
  /// The ids of a prompt with `<image>` markers: each marker becomes one `image_token_id`
  /// (the model expands it to the image's feature rows later). Throws hired::Error for a
  /// negative `image_token_id`.
  std::vector<std::int64_t> encode_prompt(std::string_view text, std::int64_t image_token_id,
                                          bool add_bos = true) const;
  /// Text of `ids` as sentencepiece decodes it (BOS/EOS and other control pieces give no text,
  /// byte pieces are joined into UTF-8, the leading dummy-prefix space is dropped). Ids at or
  /// beyond vocab_size() (the image token, padding, a model's extra vocabulary rows) give no
  /// text either; a negative id throws hired::Error.
  std::string decode(std::span<const std::int64_t> ids) const;

  std::int64_t vocab_size() const;
  std::int64_t bos_id() const;
  std::int64_t eos_id() const;
  std::int64_t unk_id() const;
  /// The piece of `id` ("▁the", "<0x0A>", "<s>"); throws hired::Error outside [0, vocab_size()).
  std::string piece(std::int64_t id) const;
  const TokenizerOptions& options() const;
  /// The model file, for messages.
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hired::io
