#include "design_space/library.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <ostream>
#include <sstream>

#include "design_space/arch_graph.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"

namespace flexnas {
namespace {

using ojson = nlohmann::ordered_json;

const std::vector<std::string> kReferenceKeys = {"dataset",         "design_space", "ops_list",
                                                 "num_neighbors",   "model_dicts",  "hashes",
                                                 "embeddings",      "neighbors",    "performances"};
const std::vector<std::string> kFlexnasKeys = {"format",   "format_version", "enumeration", "distance",
                                               "embedding", "neighbor_rule", "seed",        "source",
                                               "constraints"};

[[noreturn]] void fail_at(const std::string& file, const std::string& key, const std::string& message) {
  throw_config_error(Location{file, 0, 0, key}, message);
}

bool is_hex_hash(const std::string& s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string describe_json(const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::null: return "null";
    case ojson::value_t::boolean: return std::string("a boolean ") + (v.get<bool>() ? "true" : "false");
    case ojson::value_t::string: return "a string '" + v.get<std::string>() + "'";
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned:
    case ojson::value_t::number_float: return "a number " + v.dump();
    case ojson::value_t::object: return "an object";
    case ojson::value_t::array: return "a list";
    default: return "a binary value";
  }
}

// ---- model dicts -------------------------------------------------------------------------------

/// nlohmann value -> yaml-cpp node built in code (no marks, so messages carry only file and key).
YAML::Node json_to_yaml(const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::object: {
      YAML::Node node(YAML::NodeType::Map);
      for (auto it = v.begin(); it != v.end(); ++it) node[it.key()] = json_to_yaml(it.value());
      return node;
    }
    case ojson::value_t::array: {
      YAML::Node node(YAML::NodeType::Sequence);
      for (const auto& item : v) node.push_back(json_to_yaml(item));
      return node;
    }
    case ojson::value_t::string: return YAML::Node(v.get<std::string>());
    case ojson::value_t::boolean: return YAML::Node(v.get<bool>() ? "true" : "false");
    case ojson::value_t::number_integer: return YAML::Node(std::to_string(v.get<int64_t>()));
    case ojson::value_t::number_unsigned: return YAML::Node(std::to_string(v.get<uint64_t>()));
    case ojson::value_t::number_float: return YAML::Node(v.dump());
    default: return YAML::Node(YAML::NodeType::Null);
  }
}

bool positive_int(const ojson& v, int64_t& out) {
  if (v.is_number_unsigned()) {
    out = int64_t(v.get<uint64_t>());
    return out > 0;
  }
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return out > 0;
  }
  return false;
}

/// Fast path for the common case, a well-formed standard dict. Returns false on anything unusual,
/// which then goes through architecture_from_config (same validation and messages as every other
/// model dict flexnas reads).
bool fast_standard(const ojson& d, Architecture& arch) {
  if (!d.is_object() || d.size() != 6) return false;
  for (const char* k : {"l", "h", "n", "o", "f", "p"})
    if (!d.contains(k)) return false;
  int64_t L = 0;
  if (!positive_int(d["l"], L)) return false;
  const ojson &h = d["h"], &n = d["n"], &o = d["o"], &f = d["f"], &p = d["p"];
  for (const ojson* list : {&h, &n, &o, &f, &p})
    if (!list->is_array() || int64_t(list->size()) != L) return false;
  arch.format = ArchFormat::kStandard;
  arch.layers.assign(size_t(L), LayerSpec{});
  for (size_t i = 0; i < size_t(L); ++i) {
    LayerSpec& layer = arch.layers[i];
    if (!positive_int(h[i], layer.hidden) || !positive_int(n[i], layer.heads)) return false;
    if (!o[i].is_string()) return false;
    layer.op = o[i].get<std::string>();
    if (layer.op.empty()) return false;
    if (p[i].is_string()) layer.param = p[i].get<std::string>();
    else if (p[i].is_number_unsigned()) layer.param = std::to_string(p[i].get<uint64_t>());
    else return false;
    if (layer.param.empty()) return false;
    if (!f[i].is_array() || f[i].empty()) return false;
    layer.ffn.resize(f[i].size());
    for (size_t k = 0; k < f[i].size(); ++k)
      if (!positive_int(f[i][k], layer.ffn[k])) return false;
  }
  return true;
}

Architecture read_model_dict(const ojson& d, const std::string& file, size_t index) {
  Architecture arch;
  if (fast_standard(d, arch)) return arch;
  auto name = std::make_shared<const std::string>(file);
  return architecture_from_config(ConfigNode(json_to_yaml(d), name, "model_dicts[" + std::to_string(index) + "]"));
}

// ---- SAX reader --------------------------------------------------------------------------------

/// Builds a DOM for small values (design_space, ops_list, one model dict, flexnas keys).
class DomBuilder {
 public:
  void reset() {
    root_ = ojson();
    stack_.clear();
    key_.clear();
  }
  bool done() const { return stack_.empty(); }
  ojson& root() { return root_; }
  void value(ojson v) {
    if (stack_.empty()) root_ = std::move(v);
    else if (stack_.back()->is_array()) stack_.back()->push_back(std::move(v));
    else (*stack_.back())[key_] = std::move(v);
  }
  void open(ojson v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      stack_.push_back(&root_);
    } else if (stack_.back()->is_array()) {
      stack_.back()->push_back(std::move(v));
      stack_.push_back(&stack_.back()->back());
    } else {
      ojson& slot = (*stack_.back())[key_];
      slot = std::move(v);
      stack_.push_back(&slot);
    }
  }
  void close() { stack_.pop_back(); }
  void key(const std::string& k) { key_ = k; }

 private:
  ojson root_;
  std::vector<ojson*> stack_;
  std::string key_;
};

class LibrarySax : public nlohmann::json_sax<nlohmann::json> {
 public:
  LibrarySax(Library& lib, const std::string& file, const std::string& text) : lib_(lib), file_(file), text_(text) {}

  ojson small = ojson::object();  // top-level keys read as DOM, in file order
  bool seen_dicts = false, seen_hashes = false, seen_embeddings = false, seen_neighbors = false,
       seen_performances = false;

  bool null() override { return scalar(ojson(nullptr), "null"); }
  bool boolean(bool v) override { return scalar(ojson(v), v ? "a boolean true" : "a boolean false"); }
  bool number_integer(number_integer_t v) override { return number(double(v), ojson(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(double(v), ojson(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v, ojson(v)); }
  bool binary(binary_t&) override { return scalar(ojson(), "a binary value"); }

  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::kHashes:
        if (depth_ != 2) return wrong("a string", scalar_level());
        if (!is_hex_hash(v)) fail_here(path(), "expected a 64-digit lowercase hex SHA-256 hash, got '" + v + "'");
        lib_.hashes.push_back(std::move(v));
        ++index_;
        return true;
      case Mode::kNeighbors:
        if (depth_ != 3) return wrong("a string", scalar_level());
        if (!is_hex_hash(v)) fail_here(path(), "expected a 64-digit lowercase hex SHA-256 hash, got '" + v + "'");
        lib_.neighbors.back().push_back(std::move(v));
        ++inner_;
        return true;
      default: return scalar(ojson(std::move(v)), "a string");
    }
  }

  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 1) return true;
    if (mode_ == Mode::kDom || (mode_ == Mode::kDicts && depth_ >= 3)) {
      dom_.open(ojson::object());
      return true;
    }
    return wrong("an object", depth_);
  }
  bool key(string_t& k) override {
    if (depth_ == 1) {
      top_key_ = k;
      if (std::find(kReferenceKeys.begin(), kReferenceKeys.end(), k) == kReferenceKeys.end() &&
          std::find(kFlexnasKeys.begin(), kFlexnasKeys.end(), k) == kFlexnasKeys.end())
        fail_here(k, "unknown key; allowed: " + join(kReferenceKeys) + " (reference), " + join(kFlexnasKeys) +
                         " (flexnas)");
      if (seen_keys_.count(k)) fail_here(k, "duplicate key");
      seen_keys_.insert(k);
      index_ = 0;
      if (k == "hashes") mode_ = Mode::kHashes, seen_hashes = true;
      else if (k == "embeddings") mode_ = Mode::kEmbeddings, seen_embeddings = true;
      else if (k == "neighbors") mode_ = Mode::kNeighbors, seen_neighbors = true;
      else if (k == "performances") mode_ = Mode::kPerformances, seen_performances = true;
      else if (k == "model_dicts") mode_ = Mode::kDicts, seen_dicts = true;
      else mode_ = Mode::kDom;
      dom_.reset();
      return true;
    }
    dom_.key(k);
    return true;
  }
  bool end_object() override {
    --depth_;
    if (depth_ == 0) return true;
    dom_.close();
    return after_value();
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 1) fail_here("", "expected a library object {\"model_dicts\": ..., \"hashes\": ...}, got a list");
    if (depth_ == 2 && mode_ != Mode::kDom) return true;  // the big list itself
    switch (mode_) {
      case Mode::kDom: dom_.open(ojson::array()); return true;
      case Mode::kDicts: dom_.open(ojson::array()); return true;
      case Mode::kEmbeddings:
        if (depth_ != 3) return wrong("a list", depth_);
        lib_.embeddings.emplace_back();
        inner_ = 0;
        return true;
      case Mode::kNeighbors:
        if (depth_ != 3) return wrong("a list", depth_);
        lib_.neighbors.emplace_back();
        inner_ = 0;
        return true;
      default: return wrong("a list", depth_);
    }
  }
  bool end_array() override {
    --depth_;
    if (depth_ == 1 && mode_ != Mode::kDom) {
      mode_ = Mode::kNone;
      return true;
    }
    if (mode_ == Mode::kEmbeddings || mode_ == Mode::kNeighbors) {
      if (mode_ == Mode::kEmbeddings && lib_.embeddings.back().empty())
        fail_here(path(), "an embedding must not be empty (write null for none)");
      ++index_;
      return true;
    }
    dom_.close();
    return after_value();
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    int line = 1, column = 1;
    const size_t end = std::min(position ? position - 1 : 0, text_.size());
    for (size_t i = 0; i < end; ++i) {
      if (text_[i] == '\n') line++, column = 1;
      else column++;
    }
    std::string what = ex.what();
    const auto colon = what.find(": ", what.find("column"));
    if (colon != std::string::npos) what = what.substr(colon + 2);
    throw_config_error(Location{file_, line, column, ""}, "invalid JSON: " + what);
  }

 private:
  enum class Mode { kNone, kDom, kDicts, kHashes, kEmbeddings, kNeighbors, kPerformances };

  std::string path() const {
    std::string p = top_key_ + "[" + std::to_string(index_) + "]";
    if ((mode_ == Mode::kEmbeddings || mode_ == Mode::kNeighbors) && depth_ >= 3) p += "[" + std::to_string(inner_) + "]";
    return p;
  }
  int scalar_level() const { return depth_ + 1; }
  [[noreturn]] void fail_here(const std::string& key, const std::string& message) const { fail_at(file_, key, message); }
  // `level`: 2 = the value of a top-level key, 3 = an element of it, 4 = an element of that.
  bool wrong(const std::string& found, int level) const {
    std::string expected;
    switch (mode_) {
      case Mode::kHashes: expected = level >= 3 ? "a hash string" : "a list of hashes"; break;
      case Mode::kEmbeddings:
        expected = level >= 4 ? "a number" : level == 3 ? "null or a list of numbers" : "a list (one embedding or null per model dict)";
        break;
      case Mode::kNeighbors:
        expected = level >= 4 ? "a hash string" : level == 3 ? "null or a list of hashes" : "a list (one neighbour list or null per model dict)";
        break;
      case Mode::kPerformances: expected = level >= 3 ? "null or a number" : "a list (one performance or null per model dict)"; break;
      case Mode::kDicts:
        expected = level >= 3 ? "a model dict (a map with keys l, h, n, o, f, p or l, h, f, o)" : "a list of model dicts";
        break;
      default: expected = "a library object {\"model_dicts\": [...], \"hashes\": [...], ...}"; break;
    }
    std::string where = top_key_;
    if (level >= 3) where += "[" + std::to_string(index_) + "]";
    if (level >= 4) where += "[" + std::to_string(inner_) + "]";
    fail_here(where, "expected " + expected + ", got " + found);
  }
  bool number(double v, ojson as_json) {
    switch (mode_) {
      case Mode::kEmbeddings:
        if (depth_ != 3) return wrong("a number", scalar_level());
        if (!std::isfinite(v)) fail_here(path(), "embedding values must be finite");
        lib_.embeddings.back().push_back(float(v));
        ++inner_;
        return true;
      case Mode::kPerformances:
        if (depth_ != 2) return wrong("a number", scalar_level());
        if (!std::isfinite(v)) fail_here(path(), "a performance must be a finite number or null");
        lib_.performances.emplace_back(v);
        ++index_;
        return true;
      default: return scalar(std::move(as_json), "a number " + as_json.dump());
    }
  }
  bool scalar(ojson v, const std::string& found) {
    if (depth_ == 0) return wrong(found, 1);
    switch (mode_) {
      case Mode::kDom:
        dom_.value(std::move(v));
        return after_value();
      case Mode::kDicts:
        if (depth_ <= 2) return wrong(found, scalar_level());
        dom_.value(std::move(v));
        return true;
      case Mode::kEmbeddings:
      case Mode::kNeighbors:
      case Mode::kPerformances:
        if (depth_ == 2 && v.is_null()) {
          if (mode_ == Mode::kEmbeddings) lib_.embeddings.emplace_back();
          else if (mode_ == Mode::kNeighbors) lib_.neighbors.emplace_back();
          else lib_.performances.emplace_back();
          ++index_;
          return true;
        }
        return wrong(found, scalar_level());
      default: return wrong(found, scalar_level());
    }
  }
  // Called when a DOM value (or a nested container) completed.
  bool after_value() {
    if (!dom_.done()) return true;
    if (mode_ == Mode::kDom) {
      small[top_key_] = std::move(dom_.root());  // keys are unique (checked in key())
      dom_.reset();
      mode_ = Mode::kNone;
    } else if (mode_ == Mode::kDicts) {
      lib_.archs.push_back(read_model_dict(dom_.root(), file_, index_));
      dom_.reset();
      ++index_;
    }
    return true;
  }

  Library& lib_;
  const std::string& file_;
  const std::string& text_;
  Mode mode_ = Mode::kNone;
  int depth_ = 0;
  size_t index_ = 0, inner_ = 0;
  std::string top_key_;
  std::set<std::string> seen_keys_;
  DomBuilder dom_;
};

void check_length(const std::string& file, const std::string& key, size_t got, size_t expected) {
  if (got != expected)
    fail_at(file, key,
            std::to_string(got) + " entries, but model_dicts has " + std::to_string(expected) + " (one per architecture)");
}

// ---- writer ------------------------------------------------------------------------------------

void append_float(std::string& out, double v, bool single) {
  char buf[32];
  auto res = single ? std::to_chars(buf, buf + sizeof(buf), float(v)) : std::to_chars(buf, buf + sizeof(buf), v);
  FLEXNAS_CHECK(res.ec == std::errc(), "float formatting failed");
  out.append(buf, res.ptr);
}

}  // namespace

int64_t Library::embedding_dim() const {
  for (const auto& e : embeddings)
    if (!e.empty()) return int64_t(e.size());
  return 0;
}

int64_t Library::find(const std::string& hash) const {
  if (index_.size() != hashes.size()) {
    index_.clear();
    index_.reserve(hashes.size());
    for (size_t i = 0; i < hashes.size(); ++i) index_.emplace(hashes[i], int64_t(i));
  }
  auto it = index_.find(hash);
  return it == index_.end() ? -1 : it->second;
}

void Library::rebuild_index() {
  index_.clear();
  index_.reserve(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) index_.emplace(hashes[i], int64_t(i));
}

void Library::pad_to_size() {
  embeddings.resize(size());
  neighbors.resize(size());
  performances.resize(size());
}

size_t Library::num_performances() const {
  return size_t(std::count_if(performances.begin(), performances.end(), [](const auto& p) { return p.has_value(); }));
}

nlohmann::ordered_json constraints_to_json(const Constraints& c) {
  nlohmann::ordered_json j;
  j["max_parameters"] = c.max_parameters;
  j["max_flops"] = c.max_flops;
  return j;
}

Constraints library_constraints(const Library& lib) {
  Constraints c;
  if (!lib.meta.is_object() || !lib.meta.contains("constraints")) return c;
  const auto& j = lib.meta["constraints"];
  if (j.contains("max_parameters")) c.max_parameters = j["max_parameters"].get<int64_t>();
  if (j.contains("max_flops")) c.max_flops = j["max_flops"].get<int64_t>();
  return c;
}

Library parse_library(const std::string& text, const std::string& file, const LibraryLoadOptions& options) {
  Library lib;
  LibrarySax sax(lib, file, text);
  nlohmann::json::sax_parse(text, &sax);

  const size_t N = lib.archs.size();
  if (!sax.seen_dicts) fail_at(file, "model_dicts", "missing required key (the list of architectures)");
  if (!sax.seen_hashes) fail_at(file, "hashes", "missing required key (one SHA-256 hash per model dict)");
  check_length(file, "hashes", lib.hashes.size(), N);
  if (sax.seen_embeddings) check_length(file, "embeddings", lib.embeddings.size(), N);
  if (sax.seen_neighbors) check_length(file, "neighbors", lib.neighbors.size(), N);
  if (sax.seen_performances) check_length(file, "performances", lib.performances.size(), N);
  lib.pad_to_size();

  // Small keys.
  auto& small = sax.small;
  if (auto it = small.find("dataset"); it != small.end() && !(*it).is_null()) {
    if (!(*it).is_string()) fail_at(file, "dataset", "expected null or a dataset name, got " + describe_json((*it)));
    lib.dataset = (*it).get<std::string>();
  }
  if (auto it = small.find("design_space"); it != small.end() && !(*it).is_null()) {
    if (!(*it).is_object())
      fail_at(file, "design_space", "expected the design space's `architecture` map or null, got " + describe_json((*it)));
    try {
      design_space_from_json(nlohmann::json::parse((*it).dump()), file + " (design_space)", options.ops);
    } catch (const ConfigError& e) {
      fail_at(file, "design_space", std::string("not a valid design space: ") + e.what());
    }
    lib.design_space = (*it);
  }
  if (auto it = small.find("ops_list"); it != small.end() && !(*it).is_null()) {
    if (!(*it).is_array()) fail_at(file, "ops_list", "expected a list of op labels, got " + describe_json((*it)));
    for (size_t i = 0; i < (*it).size(); ++i) {
      if (!(*it)[i].is_string())
        fail_at(file, "ops_list[" + std::to_string(i) + "]", "expected an op label string, got " + describe_json((*it)[i]));
      lib.ops_list.push_back((*it)[i].get<std::string>());
    }
  }
  if (auto it = small.find("num_neighbors"); it != small.end() && !(*it).is_null()) {
    int64_t k = 0;
    if (!positive_int((*it), k))
      fail_at(file, "num_neighbors", "expected a positive integer, got " + describe_json((*it)));
    lib.num_neighbors = k;
  }
  if (auto it = small.find("format"); it != small.end()) {
    if (!(*it).is_string() || (*it).get<std::string>() != kLibraryFormat)
      fail_at(file, "format", "expected \"" + std::string(kLibraryFormat) + "\", got " + describe_json((*it)));
  }
  if (auto it = small.find("format_version"); it != small.end()) {
    int64_t v = 0;
    if (!positive_int((*it), v))
      fail_at(file, "format_version", "expected a positive integer, got " + describe_json((*it)));
    if (v > kLibraryFormatVersion)
      fail_at(file, "format_version",
              std::to_string(v) + " is newer than this flexnas reads (" + std::to_string(kLibraryFormatVersion) +
                  "); upgrade flexnas");
  }
  for (auto it = small.begin(); it != small.end(); ++it) {  // flexnas keys, in file order
    const std::string& k = it.key();
    if (k == "format" || k == "format_version") continue;
    if (std::find(kFlexnasKeys.begin(), kFlexnasKeys.end(), k) != kFlexnasKeys.end()) lib.meta[k] = it.value();
  }
  if (auto it = lib.meta.find("enumeration"); it != lib.meta.end() && !it->is_null()) {
    if (!it->is_object()) fail_at(file, "enumeration", "expected an object, got " + describe_json(*it));
  }
  if (auto it = lib.meta.find("constraints"); it != lib.meta.end()) {
    if (!it->is_object()) fail_at(file, "constraints", "expected an object {max_parameters, max_flops}, got " + describe_json(*it));
    for (auto c = it->begin(); c != it->end(); ++c) {
      int64_t v = 0;
      if (c.key() != "max_parameters" && c.key() != "max_flops")
        fail_at(file, "constraints." + c.key(), "unknown key (expected max_parameters or max_flops)");
      if (!c.value().is_number_integer() || (v = c.value().get<int64_t>()) < 0)
        fail_at(file, "constraints." + c.key(), "expected an integer >= 0 (0 = no limit), got " + describe_json(c.value()));
    }
  }

  // Hashes unique; neighbours name library members; embeddings share one dimension.
  lib.rebuild_index();
  std::unordered_map<std::string, size_t> first;
  first.reserve(N);
  for (size_t i = 0; i < N; ++i) {
    auto [it, inserted] = first.emplace(lib.hashes[i], i);
    if (!inserted)
      fail_at(file, "hashes[" + std::to_string(i) + "]",
              "duplicate of hashes[" + std::to_string(it->second) + "] (every architecture must appear once)");
  }
  size_t dim = 0, dim_at = 0;
  for (size_t i = 0; i < N; ++i) {
    const auto& e = lib.embeddings[i];
    if (e.empty()) continue;
    if (dim == 0) dim = e.size(), dim_at = i;
    else if (e.size() != dim)
      fail_at(file, "embeddings[" + std::to_string(i) + "]",
              std::to_string(e.size()) + " values, expected " + std::to_string(dim) + " (as embeddings[" +
                  std::to_string(dim_at) + "])");
  }
  for (size_t i = 0; i < N; ++i)
    for (size_t k = 0; k < lib.neighbors[i].size(); ++k)
      if (first.find(lib.neighbors[i][k]) == first.end())
        fail_at(file, "neighbors[" + std::to_string(i) + "][" + std::to_string(k) + "]",
                "'" + lib.neighbors[i][k] + "' is not the hash of an architecture in this library");

  if (options.verify_hashes) {
    std::vector<std::string> computed(N);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < int64_t(N); ++i) computed[size_t(i)] = architecture_hash(lib.archs[size_t(i)]);
    for (size_t i = 0; i < N; ++i)
      if (computed[i] != lib.hashes[i])
        fail_at(file, "hashes[" + std::to_string(i) + "]",
                "'" + lib.hashes[i] + "' is not the hash of model_dicts[" + std::to_string(i) + "] (which is '" +
                    computed[i] + "')");
  }
  return lib;
}

Library load_library(const std::string& path, const LibraryLoadOptions& options) {
  return parse_library(read_file(path), path, options);
}

namespace {

/// Streams the file text into `sink`, a few MB at a time (a 63,756 x 100 library is ~450 MB).
/// `performances` stands in for lib.performances (a snapshot taken while the library is in use).
void write_library(const Library& lib, const std::vector<std::optional<double>>& performances, std::ostream& sink) {
  const size_t N = lib.size();
  FLEXNAS_CHECK(lib.hashes.size() == N, "hashes ", lib.hashes.size(), " vs ", N);
  constexpr size_t kChunk = size_t(4) << 20;
  std::string out;
  out.reserve(kChunk + (size_t(1) << 16));
  auto flush = [&out, &sink](bool force) {
    if (force || out.size() >= kChunk) {
      sink.write(out.data(), std::streamsize(out.size()));
      out.clear();
    }
  };
  auto key = [&out, &flush](const char* k, bool first = false) {
    flush(false);
    out += first ? "{\n\"" : ",\n\"";
    out += k;
    out += "\": ";
  };
  key("format", true);
  out += std::string("\"") + kLibraryFormat + "\"";
  key("format_version");
  out += std::to_string(kLibraryFormatVersion);
  key("dataset");
  out += lib.dataset ? ojson(*lib.dataset).dump(-1, ' ', true) : "null";
  key("design_space");
  out += lib.design_space.dump(-1, ' ', true);
  key("ops_list");
  out += ojson(lib.ops_list).dump(-1, ' ', true);
  key("num_neighbors");
  out += std::to_string(lib.num_neighbors);
  key("model_dicts");
  out += "[";
  for (size_t i = 0; i < N; ++i) {
    out += i ? ",\n" : "\n";
    out += lib.archs[i].to_json().dump(-1, ' ', true);
    flush(false);
  }
  out += "\n]";
  key("hashes");
  out += "[";
  for (size_t i = 0; i < N; ++i) {
    FLEXNAS_CHECK(is_hex_hash(lib.hashes[i]), "bad hash at ", i);
    out += i ? ",\n\"" : "\n\"";
    out += lib.hashes[i];
    out += '"';
    flush(false);
  }
  out += "\n]";
  key("embeddings");
  out += "[";
  for (size_t i = 0; i < N; ++i) {
    out += i ? ",\n" : "\n";
    const auto* e = i < lib.embeddings.size() ? &lib.embeddings[i] : nullptr;
    if (!e || e->empty()) {
      out += "null";
      continue;
    }
    out += '[';
    for (size_t k = 0; k < e->size(); ++k) {
      if (k) out += ',';
      FLEXNAS_CHECK(std::isfinite((*e)[k]), "non-finite embedding at ", i);
      append_float(out, (*e)[k], true);
    }
    out += ']';
    flush(false);
  }
  out += "\n]";
  key("neighbors");
  out += "[";
  for (size_t i = 0; i < N; ++i) {
    out += i ? ",\n" : "\n";
    const auto* nb = i < lib.neighbors.size() ? &lib.neighbors[i] : nullptr;
    if (!nb || nb->empty()) {
      out += "null";
      continue;
    }
    out += '[';
    for (size_t k = 0; k < nb->size(); ++k) {
      out += k ? ",\"" : "\"";
      out += (*nb)[k];
      out += '"';
    }
    out += ']';
    flush(false);
  }
  out += "\n]";
  key("performances");
  out += "[";
  for (size_t i = 0; i < N; ++i) {
    out += i ? ",\n" : "\n";
    if (i < performances.size() && performances[i]) {
      FLEXNAS_CHECK(std::isfinite(*performances[i]), "non-finite performance at ", i);
      append_float(out, *performances[i], false);
    } else {
      out += "null";
    }
  }
  out += "\n]";
  if (lib.meta.is_object())
    for (auto it = lib.meta.begin(); it != lib.meta.end(); ++it) {
      FLEXNAS_CHECK(std::find(kFlexnasKeys.begin(), kFlexnasKeys.end(), it.key()) != kFlexnasKeys.end() &&
                        it.key() != "format" && it.key() != "format_version",
                    "unknown library meta key '", it.key(), "'");
      key(it.key().c_str());
      out += it.value().dump(-1, ' ', true);
    }
  out += "\n}\n";
  flush(true);
}

}  // namespace

std::string library_to_string(const Library& lib) {
  std::ostringstream out;
  write_library(lib, lib.performances, out);
  return out.str();
}

void save_library(const Library& library, const std::string& path) {
  save_library(library, library.performances, path);
}

void save_library(const Library& library, const std::vector<std::optional<double>>& performances,
                  const std::string& path) {
  write_file_atomic(path, [&](std::ostream& out) { write_library(library, performances, out); });
}

bool libraries_equal(const Library& a, const Library& b) {
  return a.dataset == b.dataset && a.design_space == b.design_space && a.ops_list == b.ops_list &&
         a.num_neighbors == b.num_neighbors && a.archs == b.archs && a.hashes == b.hashes &&
         a.embeddings == b.embeddings && a.neighbors == b.neighbors && a.performances == b.performances &&
         a.meta == b.meta;
}

}  // namespace flexnas
