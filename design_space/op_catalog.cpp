#include "design_space/op_catalog.h"

#include <algorithm>
#include <cctype>

namespace flexnas {

void OpCatalog::add(OpTypeInfo info) {
  for (auto& t : types_)
    if (t.name == info.name) {
      t = std::move(info);
      return;
    }
  types_.push_back(std::move(info));
}

const OpTypeInfo* OpCatalog::find(const std::string& name) const {
  for (const auto& t : types_)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<std::string> OpCatalog::names() const {
  std::vector<std::string> out;
  for (const auto& t : types_) out.push_back(t.name);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

std::function<std::string(const std::string&)> one_of(std::vector<std::string> allowed) {
  return [allowed](const std::string& p) -> std::string {
    if (std::find(allowed.begin(), allowed.end(), p) != allowed.end()) return "";
    std::string text;
    for (size_t i = 0; i < allowed.size(); ++i) text += (i ? ", " : "") + allowed[i];
    return text;
  };
}

std::string check_kernel(const std::string& p) {
  const bool digits = !p.empty() && p.size() < 4 &&
                      std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); });
  if (digits && std::stoi(p) % 2 == 1) return "";
  return "an odd kernel size such as 5, 9 or 13";
}

OpCatalog make_builtin() {
  OpCatalog catalog;
  catalog.add({"sa", "multi-head self-attention; parameter: similarity sdp (scaled dot product) | wma (weighted multiplicative)",
               one_of({"sdp", "wma"})});
  catalog.add({"l", "linear token mixing (FNet-style); parameter: transform dft | dct", one_of({"dft", "dct"})});
  catalog.add({"c", "dynamic span-based convolution (ConvBERT); parameter: odd kernel size k", check_kernel});
  return catalog;
}

}  // namespace

OpCatalog& op_catalog() {
  static OpCatalog catalog = make_builtin();
  return catalog;
}

}  // namespace flexnas
