// hired's io layer (no LibTorch): list the tensors of a safetensors file, as hired reads any
// checkpoint shard: validated header, memory-mapped data.
//   read_checkpoint FILE.safetensors
#include "hired/error.hpp"
#include "hired/io/safetensors.hpp"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: read_checkpoint FILE.safetensors\n");
    return 2;
  }
  try {
    const hired::io::SafeTensors file = hired::io::SafeTensors::map_file(argv[1]);
    for (const std::string& name : file.names()) {
      const hired::io::TensorView& t = file.at(name);
      std::printf("%s %s %s\n", name.c_str(), std::string(hired::io::dtype_name(t.dtype())).c_str(),
                  hired::shape_text(t.shape()).c_str());
    }
  } catch (const std::exception& e) {  // hired::Error (a bad file) or hired::IoError
    std::fprintf(stderr, "read_checkpoint: %s\n", e.what());
    return 2;
  }
}
