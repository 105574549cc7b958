#include "datasets/tokenizer.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "design_space/process.h"

namespace flexnas::datasets {
namespace fs = std::filesystem;

namespace {

bool is_executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p); }

std::string self_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::string clean_segment(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return out;
}

}  // namespace

std::string tokenize_tool_path() {
  if (const char* env = std::getenv("FLEXNAS_TOKENIZE"); env && *env) {
    if (!is_executable(env)) throw Error(std::string("FLEXNAS_TOKENIZE=") + env + ": not an executable file");
    return env;
  }
  const std::string dir = self_dir();
  std::vector<std::string> candidates;
  if (!dir.empty()) {
    candidates.push_back(dir + "/flexnas-tokenize");
    candidates.push_back(dir + "/../bin/flexnas-tokenize");
    candidates.push_back(dir + "/../../bin/flexnas-tokenize");
  }
#ifdef FLEXNAS_TOKENIZE_BUILD_PATH
  candidates.push_back(FLEXNAS_TOKENIZE_BUILD_PATH);
#endif
  for (const auto& c : candidates)
    if (is_executable(c)) return fs::weakly_canonical(c).string();
  std::string tried;
  for (const auto& c : candidates) tried += "\n  " + c;
  throw Error("cannot find the flexnas-tokenize executable (build target flexnas-tokenize, or set "
              "FLEXNAS_TOKENIZE); tried:" + tried);
}

void run_tokenize_tool(const std::vector<std::string>& args) {
  const std::string tool = tokenize_tool_path();
  char error_file[] = "/tmp/flexnas-tokenize-error.XXXXXX";
  const int efd = ::mkstemp(error_file);
  if (efd < 0) throw Error(std::string("cannot create a temporary file: ") + std::strerror(errno));
  ::close(efd);
  std::vector<std::string> full{tool};
  full.insert(full.end(), args.begin(), args.end());
  full.push_back("--error-file");
  full.push_back(error_file);
  LOG_DEBUG("running ", tool, " ", args.empty() ? "" : args[0]);
  // spawn_process (vfork + exec): the child never runs LibTorch or SentencePiece code of this process.
  SpawnOptions spawn;
  spawn.argv = full;
  spawn.search_path = false;
  const Spawned child = spawn_process(spawn);
  int status = 0;
  if (child.pid >= 0 && child.exec_error != 0) wait_process(child.pid, status);  // it exited 127
  const int start_error = child.pid < 0 ? child.fork_error : child.exec_error;
  if (start_error != 0) {
    ::unlink(error_file);
    throw Error("cannot start " + tool + ": " + std::strerror(start_error));
  }
  if (wait_process(child.pid, status) != 0) {
    ::unlink(error_file);
    throw Error(std::string("waitpid on flexnas-tokenize failed: ") + std::strerror(errno));
  }
  std::string message;
  try {
    message = read_file(error_file);
  } catch (const std::exception&) {
  }
  ::unlink(error_file);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
    throw ConfigError(message.empty() ? "flexnas-tokenize: invalid input" : message);
  std::ostringstream what;
  what << "flexnas-tokenize " << (args.empty() ? "" : args[0]) << " failed ("
       << (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                               : "exit " + std::to_string(WEXITSTATUS(status)))
       << ")" << (message.empty() ? "" : ": " + message);
  throw Error(what.str());
}

void train_tokenizer(const TokenizerTrainOptions& o) {
  if (o.corpus.empty()) throw ConfigError("error: --corpus: at least one corpus file is required");
  if (o.out.empty()) throw ConfigError("error: --out: the model path is required");
  std::vector<std::string> args{"train", "--vocab-size", std::to_string(o.vocab_size), "--out", o.out,
                                "--model-type", o.model_type, "--seed", std::to_string(o.seed),
                                "--character-coverage", std::to_string(o.character_coverage),
                                "--max-sentences", std::to_string(o.max_sentences),
                                "--threads", std::to_string(o.threads), "--corpus"};
  args.insert(args.end(), o.corpus.begin(), o.corpus.end());
  run_tokenize_tool(args);
}

Tokenizer::Tokenizer(std::string model, std::string cache_dir) : model_(std::move(model)), cache_dir_(std::move(cache_dir)) {
  if (!fs::is_regular_file(model_)) throw ConfigError(model_ + ": error: tokenizer model: file not found");
  hash_ = file_hash(model_);
  // The vocabulary size is stored by flexnas-tokenize in a small sidecar next to the caches
  // (asking the tool costs a process start; the sidecar is keyed by the model hash).
  std::error_code ec;
  fs::create_directories(cache_dir_, ec);
  if (ec) throw ConfigError(cache_dir_ + ": error: cannot create the token cache directory: " + ec.message());
  const std::string info = cache_dir_ + "/tokenizer-" + hex64(hash_) + ".info";
  if (!fs::is_regular_file(info)) run_tokenize_tool({"info", "--model", model_, "--out", info});
  const std::string text = read_file(info);
  std::istringstream in(text);
  std::string key;
  while (in >> key) {
    if (key == "vocab_size") in >> vocab_size_;
    else in.ignore(1 << 20, '\n');
  }
  if (vocab_size_ <= SpecialIds::kCount) throw Error(info + ": error: no valid vocab_size (delete the file to redo it)");
}

std::shared_ptr<const TokenCache> Tokenizer::encode_file(const std::string& input, const std::string& format,
                                                         const std::string& name, uint64_t source_hash) const {
  const std::string out = cache_dir_ + "/" + name + "." + hex64(hash_) + "." + hex64(source_hash) + ".tok";
  TokenCacheHeader h{};
  if (read_token_cache_header(out, h) && h.tokenizer_hash == hash_ && h.source_hash == source_hash) {
    try {
      return TokenCache::open(out);
    } catch (const Error& e) {
      LOG_WARN("re-tokenizing: ", e.what());
    }
  }
  run_tokenize_tool({"encode", "--model", model_, "--input", input, "--format", format, "--out", out});
  auto cache = TokenCache::open(out);
  if (cache->header().tokenizer_hash != hash_ || cache->header().source_hash != source_hash)
    throw Error(out + ": error: flexnas-tokenize wrote a cache for a different tokenizer or input");
  return cache;
}

std::shared_ptr<const TokenCache> Tokenizer::encode_text_file(const std::string& path) const {
  if (!fs::is_regular_file(path)) throw ConfigError(path + ": error: corpus: file not found");
  return encode_file(path, "text", fs::path(path).filename().string(), file_hash(path));
}

std::shared_ptr<const TokenCache> Tokenizer::encode_content(const std::string& name, const std::string& content,
                                                            const std::string& format) const {
  uint64_t size = content.size();
  const uint64_t source_hash = fnv1a64(&size, sizeof(size), fnv1a64(content.data(), content.size()));
  const std::string out = cache_dir_ + "/" + name + "." + hex64(hash_) + "." + hex64(source_hash) + ".tok";
  TokenCacheHeader h{};
  if (read_token_cache_header(out, h) && h.tokenizer_hash == hash_ && h.source_hash == source_hash) {
    try {
      return TokenCache::open(out);
    } catch (const Error& e) {
      LOG_WARN("re-tokenizing: ", e.what());
    }
  }
  const std::string input = cache_dir_ + "/" + name + "." + hex64(source_hash) + ".input";
  write_file_atomic(input, content);
  try {
    auto cache = encode_file(input, format, name, source_hash);
    fs::remove(input);
    return cache;
  } catch (...) {
    std::error_code ec;
    fs::remove(input, ec);
    throw;
  }
}

std::shared_ptr<const TokenCache> Tokenizer::encode_segments(const std::string& name,
                                                             const std::vector<std::vector<std::string>>& examples) const {
  // "segments" format: a line "<k>" with the segment count, then k lines (one per segment).
  std::string content;
  for (const auto& ex : examples) {
    content += std::to_string(ex.size()) + "\n";
    for (const auto& seg : ex) content += clean_segment(seg) + "\n";
  }
  return encode_content(name, content, "segments");
}

std::shared_ptr<const TokenCache> Tokenizer::encode_words(const std::string& name,
                                                          const std::vector<std::vector<std::string>>& sentences) const {
  std::string content;
  for (const auto& sent : sentences) {
    content += std::to_string(sent.size()) + "\n";
    for (const auto& w : sent) content += clean_segment(w) + "\n";
  }
  return encode_content(name, content, "segments");
}

}  // namespace flexnas::datasets
