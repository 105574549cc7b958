#pragma once
// The safetensors format, read and written directly (no library): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
// "__metadata__": {"k": "v"}}, then the raw little-endian data; offsets are relative to the data.
// Files written here load with Python's safetensors and python/flexnas_torch.py.
#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace flexnas::models {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Writes the tensors (any device; copied to CPU) atomically, sorted by name. Names must be unique.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Reads every tensor (CPU). A truncated file, a bad header or inconsistent offsets throw
/// ConfigError naming the file and the tensor.
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata = nullptr);

}  // namespace flexnas::models
