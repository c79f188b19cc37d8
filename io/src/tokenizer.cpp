// The sentencepiece tokenizer of a llava-hf checkpoint, with transformers' prompt conventions.
#include "hired/io/tokenizer.hpp"

#include "hired/error.hpp"
#include "hired/io/file.hpp"

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <iterator>
#include <span>
#include <system_error>
#include <vector>

namespace hired::io {

namespace {

// --- the dummy prefix ---------------------------------------------------------------------
//
// sentencepiece puts a "▁" before the text it encodes when the model's normalizer says
// add_dummy_prefix, and this sentencepiece (Debian's 0.1.97) has no per-call switch. Text after
// an `<image>` must be encoded without it, so a second processor is loaded from a copy of the
// model whose NormalizerSpec says add_dummy_prefix = false. Debian ships no protobuf headers for
// the model, so the copy is made on the wire format: every field is copied through unchanged
// except that one flag.

constexpr std::uint32_t kNormalizerSpec = 3;  // ModelProto.normalizer_spec (message)
constexpr std::uint32_t kAddDummyPrefix = 3;  // NormalizerSpec.add_dummy_prefix (bool)

struct Field {
  std::uint32_t number = 0;
  std::uint32_t wire_type = 0;
  std::string_view raw;      // tag + value, as stored
  std::string_view payload;  // the bytes of a length-delimited value
};

bool read_varint(std::string_view& in, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    value |= std::uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80u) == 0) return true;
  }
  return false;
}

// Reads one field from the front of `in`; false if the bytes are not a well-formed field.
bool next_field(std::string_view& in, Field& field) {
  const std::string_view start = in;
  std::uint64_t tag = 0;
  if (!read_varint(in, tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return false;
  field.number = static_cast<std::uint32_t>(tag >> 3);
  field.wire_type = static_cast<std::uint32_t>(tag & 7u);
  field.payload = {};
  std::uint64_t value = 0;
  switch (field.wire_type) {
    case 0:
      if (!read_varint(in, value)) return false;
      break;
    case 1:
    case 5: {
      const std::size_t n = field.wire_type == 1 ? 8 : 4;
      if (in.size() < n) return false;
      in.remove_prefix(n);
      break;
    }
    case 2:
      if (!read_varint(in, value) || value > in.size()) return false;
      field.payload = in.substr(0, static_cast<std::size_t>(value));
      in.remove_prefix(static_cast<std::size_t>(value));
      break;
    default:
      return false;  // groups: not used by sentencepiece models
  }
  field.raw = start.substr(0, start.size() - in.size());
  return true;
}

void write_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

/// The model's top-level fields, in order; hired::Error naming the byte where they stop parsing.
std::vector<Field> top_level_fields(std::string_view model, const std::string& origin) {
  std::vector<Field> fields;
  for (std::string_view in = model; !in.empty();) {
    const bool ok = next_field(in, fields.emplace_back());
    check(ok, "tokenizer '{}': not a sentencepiece model (malformed protobuf at byte {})", origin,
          model.size() - in.size());
  }
  return fields;
}

/// The model with normalizer_spec.add_dummy_prefix false (added when the spec lacks it).
std::string without_dummy_prefix(std::span<const Field> model, const std::string& origin) {
  std::string out;
  bool rewritten = false;
  for (const Field& field : model) {
    if (field.number != kNormalizerSpec || field.wire_type != 2 || rewritten) {
      out.append(field.raw);
      continue;
    }
    std::string spec;
    for (std::string_view fields = field.payload; !fields.empty();) {
      Field f;
      check(next_field(fields, f), "tokenizer '{}': its normalizer_spec is malformed", origin);
      if (f.number != kAddDummyPrefix) spec.append(f.raw);
    }
    write_varint(spec, (kAddDummyPrefix << 3) | 0);  // varint field...
    spec.push_back(0);                                // ...= false
    write_varint(out, (kNormalizerSpec << 3) | 2);
    write_varint(out, spec.size());
    out.append(spec);
    rewritten = true;
  }
  if (!rewritten) {  // no normalizer_spec: one that only says "no dummy prefix"
    write_varint(out, (kNormalizerSpec << 3) | 2);
    write_varint(out, 2);
    write_varint(out, (kAddDummyPrefix << 3) | 0);
    out.push_back(0);
  }
  return out;
}

// sentencepiece builds a trie of the pieces with darts-clone, which throws on an empty piece or
// one with a NUL byte, and the exception ends the process inside sentencepiece (found by
// fuzzing). No trained model has such a piece: refuse them before sentencepiece sees the model.
constexpr std::uint32_t kPieces = 1;      // ModelProto.pieces (repeated message)
constexpr std::uint32_t kPieceText = 1;   // SentencePiece.piece (string)

void check_pieces(std::span<const Field> model, const std::string& origin) {
  std::int64_t index = 0;
  for (const Field& field : model) {
    if (field.number != kPieces || field.wire_type != 2) continue;
    std::string_view text;
    for (std::string_view fields = field.payload; !fields.empty();) {
      Field f;
      check(next_field(fields, f), "tokenizer '{}': piece {} is malformed", origin, index);
      if (f.number == kPieceText && f.wire_type == 2) text = f.payload;
    }
    check(!text.empty(), "tokenizer '{}': piece {} is empty", origin, index);
    check(text.find('\0') == std::string_view::npos, "tokenizer '{}': piece {} contains a NUL byte",
          origin, index);
    ++index;
  }
}

std::string read_model(const std::filesystem::path& path) {
  const std::string label = fmt::format("tokenizer '{}'", path.string());
  std::string bytes = read_file(path, label);
  check(!bytes.empty(), "{}: the file is empty", label);
  return bytes;
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  TokenizerOptions options;
  sentencepiece::SentencePieceProcessor sp;            // the model as it is
  sentencepiece::SentencePieceProcessor sp_no_prefix;  // the same without the dummy prefix

  std::vector<std::int64_t> encode_with(const sentencepiece::SentencePieceProcessor& p,
                                        std::string_view text) const {
    std::vector<int> ids;
    const auto status = p.Encode(text, &ids);
    check(status.ok(), "tokenizer '{}': cannot encode the text: {}", source, status.ToString());
    return {ids.begin(), ids.end()};
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& model_file, TokenizerOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->source = model_file.string();
  impl->options = options;
  const std::string bytes = read_model(model_file);
  const std::vector<Field> fields = top_level_fields(bytes, impl->source);
  check_pieces(fields, impl->source);
  if (const auto status = impl->sp.LoadFromSerializedProto(bytes); !status.ok())
    fail("tokenizer '{}': not a sentencepiece model ({})", impl->source, status.ToString());
  const std::string bare = without_dummy_prefix(fields, impl->source);
  if (const auto status = impl->sp_no_prefix.LoadFromSerializedProto(bare); !status.ok())
    fail("tokenizer '{}': cannot load it without the dummy prefix ({})", impl->source,
         status.ToString());
  check(impl->sp.GetPieceSize() > 0, "tokenizer '{}': the model has no pieces", impl->source);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load_dir(const std::filesystem::path& dir) {
  TokenizerOptions options;
  const auto config_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const nlohmann::json config =
        read_json(config_path, fmt::format("tokenizer config '{}'", config_path.string()));
    if (config.is_object())
      if (auto it = config.find("legacy"); it != config.end() && !it->is_null()) {
        check(it->is_boolean(), "tokenizer config '{}': 'legacy' is {}, not true or false",
              config_path.string(), it->dump());
        options.legacy = it->get<bool>();
      }
  }
  return load(dir / "tokenizer.model", options);
}

namespace {
void push_bos(std::vector<std::int64_t>& ids, std::int64_t bos, const std::string& source) {
  check(bos >= 0, "tokenizer '{}': the model has no BOS piece, so add_bos cannot be honoured",
        source);
  ids.push_back(bos);
}
}  // namespace

std::vector<std::int64_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<std::int64_t> ids;
  if (add_bos) push_bos(ids, bos_id(), impl_->source);
  const auto body = impl_->encode_with(impl_->sp, text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<std::int64_t> Tokenizer::encode_prompt(std::string_view text,
                                                   std::int64_t image_token_id,
                                                   bool add_bos) const {
  check(image_token_id >= 0, "encode_prompt: image_token_id {} must not be negative",
        image_token_id);
  constexpr std::string_view marker = "<image>";
  std::vector<std::int64_t> ids;
  if (add_bos) push_bos(ids, bos_id(), impl_->source);
  bool first = true;
  for (;;) {
    const std::size_t at = text.find(marker);
    const std::string_view piece = text.substr(0, at);
    // legacy = false: the dummy prefix belongs to the start of the prompt only.
    const auto& processor = first || impl_->options.legacy ? impl_->sp : impl_->sp_no_prefix;
    const auto body = impl_->encode_with(processor, piece);
    ids.insert(ids.end(), body.begin(), body.end());
    if (at == std::string_view::npos) break;
    ids.push_back(image_token_id);
    text.remove_prefix(at + marker.size());
    first = false;
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int64_t> ids) const {
  std::vector<int> known;
  known.reserve(ids.size());
  const std::int64_t n = vocab_size();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    check(ids[i] >= 0, "decode: id {} at position {} is negative", ids[i], i);
    if (ids[i] < n) known.push_back(static_cast<int>(ids[i]));
  }
  std::string text;
  const auto status = impl_->sp.Decode(known, &text);
  check(status.ok(), "tokenizer '{}': cannot decode: {}", impl_->source, status.ToString());
  return text;
}

std::int64_t Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
std::int64_t Tokenizer::bos_id() const { return impl_->sp.bos_id(); }
std::int64_t Tokenizer::eos_id() const { return impl_->sp.eos_id(); }
std::int64_t Tokenizer::unk_id() const { return impl_->sp.unk_id(); }

std::string Tokenizer::piece(std::int64_t id) const {
  check(id >= 0 && id < vocab_size(), "piece: id {} is outside the vocabulary [0, {})", id,
        vocab_size());
  return impl_->sp.IdToPiece(static_cast<int>(id));
}

const TokenizerOptions& Tokenizer::options() const { return impl_->options; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace hired::io
