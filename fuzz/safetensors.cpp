// Fuzz target: the safetensors reader on any bytes, from memory (SafeTensors::from_bytes, what
// load() and hired_select use) and through the memory mapping the runtime's checkpoint loader
// uses (map_file), then every tensor view it hands out read in full.
#include "support.hpp"

#include "hired/io/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

void read_everything(const hired::io::SafeTensors& file) {
  for (const std::string& name : file.names()) {
    const hired::io::TensorView& view = file.at(name);
    // A copy reads every byte of the view (ASan checks the whole range of the memcpy).
    const std::vector<std::byte> copy(view.bytes().begin(), view.bytes().end());
    hired_fuzz::reject_bad_input([&] { (void)view.to_float(); });
    hired_fuzz::reject_bad_input([&] { (void)view.to_int64(); });
  }
  for (const auto& [key, value] : file.metadata()) (void)(key.size() + value.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hired_fuzz::reject_bad_input([&] {
    read_everything(hired::io::SafeTensors::from_bytes({data, data + size}, "fuzz.safetensors"));
  });
  const auto path = hired_fuzz::write_scratch("model.safetensors", data, size);
  hired_fuzz::reject_bad_input(
      [&] { read_everything(hired::io::SafeTensors::map_file(path.string())); });
  return 0;
}
