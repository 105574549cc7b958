#include "models/safetensors.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "design_space/atomic_file.h"
#include "design_space/error.h"

namespace flexnas::models {
namespace {

const std::vector<std::pair<std::string, torch::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> table = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
      {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};
  return table;
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : dtype_table())
    if (type == t) return name;
  throw Error(std::string("safetensors: unsupported tensor type ") + c10::toString(t));
}

[[noreturn]] void fail(const std::string& path, const std::string& tensor, const std::string& message) {
  throw_config_error(Location{path, 0, 0, tensor.empty() ? "" : "tensor '" + tensor + "'"}, message);
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::map<std::string, torch::Tensor> sorted;
  for (const auto& [name, t] : tensors) {
    FLEXNAS_CHECK(!name.empty() && name != "__metadata__", "bad tensor name '", name, "'");
    FLEXNAS_CHECK(sorted.emplace(name, t.detach().to(torch::kCPU).contiguous()).second, "tensor '", name,
                  "' written twice");
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t bytes = uint64_t(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the reference writer does
  write_file_atomic(path, [&](std::ostream& out) {
    const uint64_t n = text.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = (unsigned char)((n >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& [name, t] : sorted)
      out.write(static_cast<const char*>(t.data_ptr()), std::streamsize(uint64_t(t.numel()) * t.element_size()));
  });
}

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open the file");
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 8)
    fail(path, "", "not a safetensors file: " + std::to_string(data.size()) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t((unsigned char)data[size_t(i)]);
  if (n > data.size() - 8)
    fail(path, "", "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(data.size()) +
                       " (truncated or not a safetensors file)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data.substr(8, size_t(n)));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("bad header: invalid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(path, "", "bad header: expected a JSON object");
  const uint64_t data_size = data.size() - 8 - n;
  const char* base = data.data() + 8 + n;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && entry.is_object())
        for (const auto& [k, v] : entry.items())
          if (v.is_string()) (*metadata)[k] = v.get<std::string>();
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      fail(path, name, "bad header entry: expected {dtype, shape, data_offsets}");
    const auto& dt = entry["dtype"];
    const auto& shape_j = entry["shape"];
    const auto& off = entry["data_offsets"];
    torch::ScalarType type = torch::kFloat32;
    bool known = false;
    if (dt.is_string())
      for (const auto& [dname, dtype] : dtype_table())
        if (dname == dt.get<std::string>()) type = dtype, known = true;
    if (!known) fail(path, name, "unsupported dtype " + dt.dump());
    if (!shape_j.is_array()) fail(path, name, "bad shape " + shape_j.dump());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& s : shape_j) {
      if (!s.is_number_unsigned()) fail(path, name, "bad shape " + shape_j.dump());
      shape.push_back(s.get<int64_t>());
      numel *= s.get<uint64_t>();
    }
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, name, "bad data_offsets " + off.dump());
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(path, name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] exceed the " +
                           std::to_string(data_size) + " data bytes (truncated file?)");
    auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
    const uint64_t bytes = numel * t.element_size();
    if (bytes != end - begin)
      fail(path, name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] hold " +
                           std::to_string(end - begin) + " bytes, shape " + shape_j.dump() + " needs " + std::to_string(bytes));
    if (bytes) std::memcpy(t.data_ptr(), base + begin, bytes);
    out.emplace(name, t);
  }
  return out;
}

}  // namespace flexnas::models
