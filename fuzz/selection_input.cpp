// Fuzz target: hired_select's input file, read as the tool reads it (read_selection_input) and
// then selected from in both modes, as the tool does with the mode it is given.
#include "support.hpp"

#include "hired/config.hpp"
#include "hired/io/selection_input.hpp"
#include "hired/selection.hpp"

#include <cstddef>
#include <cstdint>
#include <utility>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hired_fuzz::reject_bad_input([&] {
    const hired::io::SafeTensors file =
        hired::io::SafeTensors::from_bytes({data, data + size}, "input.safetensors");
    for (const hired::Mode mode : {hired::Mode::exact, hired::Mode::reference}) {
      hired_fuzz::reject_bad_input([&] {
        hired::io::SelectionInput in = hired::io::read_selection_input(file, mode, 336);
        hired::DropConfig config;
        config.mode = mode;
        (void)hired::select_tokens(in.init_scores, in.final_scores, std::move(in.images),
                                   in.vision, config);
      });
    }
  });
  return 0;
}
