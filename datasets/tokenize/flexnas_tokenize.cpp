// flexnas-tokenize: the only flexnas program that loads SentencePiece. It never links LibTorch:
// Debian's libsentencepiece carries its own protobuf and crashes a process that also loads LibTorch
// (PLATFORM.md). The LibTorch side (datasets/tokenizer.h) runs it with posix_spawn and memory-maps the
// token caches it writes.
//
//   flexnas-tokenize train  --corpus FILE... --vocab-size N --out spm.model [--model-type unigram|bpe]
//                           [--seed S] [--character-coverage C] [--max-sentences N] [--threads T]
//   flexnas-tokenize encode --model spm.model --input FILE --format text|segments --out CACHE.tok
//   flexnas-tokenize info   --model spm.model [--out FILE]
// Every subcommand takes --error-file F: the error message is also written there (for the caller).
// Exit codes: 0 ok, 2 bad input (ConfigError), 1 other failures.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "datasets/token_cache.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "design_space/progress.h"

namespace flexnas::datasets {
namespace {

struct Options {
  std::vector<std::string> corpus;
  TokenizerTrainOptions train;
  std::string model, input, format = "text", out, error_file;
  bool quiet = false;
};

std::string strip_cr(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

/// Sentences of plain-text files: every non-blank line.
class CorpusIterator : public sentencepiece::SentenceIterator {
 public:
  CorpusIterator(std::vector<std::string> files, int64_t max_sentences)
      : files_(std::move(files)), max_(max_sentences) {
    advance();
  }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }
  int64_t count() const { return count_; }

 private:
  void advance() {
    if (max_ > 0 && count_ >= max_) {
      done_ = true;
      return;
    }
    while (true) {
      if (!in_.is_open()) {
        if (next_file_ >= files_.size()) {
          done_ = true;
          return;
        }
        in_.open(files_[next_file_]);
        if (!in_) throw ConfigError(files_[next_file_] + ": error: --corpus: cannot open file");
        ++next_file_;
      }
      if (std::getline(in_, line_)) {
        line_ = strip_cr(line_);
        if (blank(line_)) continue;
        ++count_;
        return;
      }
      in_.close();
      in_.clear();
    }
  }
  std::vector<std::string> files_;
  int64_t max_;
  size_t next_file_ = 0;
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
  int64_t count_ = 0;
};

void check_status(const sentencepiece::util::Status& s, const std::string& what) {
  if (!s.ok()) throw Error("sentencepiece: " + what + ": " + s.ToString());
}

void load_model(sentencepiece::SentencePieceProcessor& sp, const std::string& path) {
  std::ifstream probe(path);
  if (!probe) throw ConfigError(path + ": error: --model: cannot open file");
  const auto st = sp.Load(path);
  if (!st.ok()) throw ConfigError(path + ": error: --model: not a SentencePiece model (" + st.ToString() + ")");
}

/// The special ids every flexnas tokenizer must have (tokenizer.h).
void check_special_ids(const sentencepiece::SentencePieceProcessor& sp, const std::string& path) {
  const bool ok = sp.pad_id() == SpecialIds::kPad && sp.unk_id() == SpecialIds::kUnk && sp.bos_id() == SpecialIds::kCls &&
                  sp.eos_id() == SpecialIds::kSep && sp.PieceToId("[MASK]") == SpecialIds::kMask;
  if (!ok)
    throw ConfigError(path + ": error: --model: not a flexnas tokenizer (special ids pad " + std::to_string(sp.pad_id()) +
                      ", unk " + std::to_string(sp.unk_id()) + ", bos " + std::to_string(sp.bos_id()) + ", eos " +
                      std::to_string(sp.eos_id()) + ", [MASK] " + std::to_string(sp.PieceToId("[MASK]")) +
                      "; expected 0, 1, 2, 3, 4: train it with `flexnas tokenizer train`)");
}

void run_train(const Options& o) {
  const auto& t = o.train;
  if (t.vocab_size <= SpecialIds::kCount + 1)
    throw ConfigError("error: --vocab-size: " + std::to_string(t.vocab_size) + " is too small; at least " +
                      std::to_string(SpecialIds::kCount + 2));
  if (t.model_type != "unigram" && t.model_type != "bpe")
    throw ConfigError("error: --model-type: '" + t.model_type + "'; allowed: unigram, bpe");
  if (!(t.character_coverage > 0.0 && t.character_coverage <= 1.0))
    throw ConfigError("error: --character-coverage: " + std::to_string(t.character_coverage) + "; allowed: (0, 1]");
  for (const auto& f : o.corpus) {
    std::ifstream probe(f);
    if (!probe) throw ConfigError(f + ": error: --corpus: cannot open file");
  }
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(t.seed));
  const std::unordered_map<std::string, std::string> kwargs = {
      {"vocab_size", std::to_string(t.vocab_size)},
      {"model_type", t.model_type},
      {"character_coverage", std::to_string(t.character_coverage)},
      {"pad_id", std::to_string(SpecialIds::kPad)},
      {"unk_id", std::to_string(SpecialIds::kUnk)},
      {"bos_id", std::to_string(SpecialIds::kCls)},
      {"eos_id", std::to_string(SpecialIds::kSep)},
      {"control_symbols", "[MASK]"},
      {"num_threads", std::to_string(t.threads)},
      {"minloglevel", o.quiet ? "2" : "1"},
      {"max_sentence_length", "8192"},
  };
  CorpusIterator it(o.corpus, t.max_sentences);
  LOG_INFO("training a ", t.model_type, " tokenizer, vocabulary ", t.vocab_size, ", on ", o.corpus.size(), " file(s)");
  std::string proto;
  const auto st = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &proto);
  if (!st.ok()) {
    // Too small a corpus for the vocabulary is the usual cause: the user's input, not a bug.
    throw ConfigError("error: --vocab-size: SentencePiece could not train on " + std::to_string(it.count()) +
                      " sentences: " + st.ToString());
  }
  sentencepiece::SentencePieceProcessor sp;
  check_status(sp.LoadFromSerializedProto(proto), "load the trained model");
  check_special_ids(sp, o.train.out);
  write_file_atomic(o.train.out, proto);
  LOG_INFO("wrote ", o.train.out, " (", sp.GetPieceSize(), " pieces, ", it.count(), " training sentences)");
}

void run_info(const Options& o) {
  sentencepiece::SentencePieceProcessor sp;
  load_model(sp, o.model);
  check_special_ids(sp, o.model);
  std::ostringstream text;
  text << "vocab_size " << sp.GetPieceSize() << "\nhash " << hex64(file_hash(o.model)) << "\n";
  if (o.out.empty()) std::cout << text.str();
  else write_file_atomic(o.out, text.str());
}

void run_encode(const Options& o) {
  sentencepiece::SentencePieceProcessor sp;
  load_model(sp, o.model);
  check_special_ids(sp, o.model);
  if (o.format != "text" && o.format != "segments")
    throw ConfigError("error: --format: '" + o.format + "'; allowed: text, segments");
  std::ifstream in(o.input, std::ios::binary);
  if (!in) throw ConfigError(o.input + ": error: --input: cannot open file");
  TokenCacheWriter writer(static_cast<uint32_t>(sp.GetPieceSize()), file_hash(o.model), file_hash(o.input));
  Progress progress("tokenizing " + o.input, 0, "lines");
  std::string line;
  std::vector<int> ids;
  int64_t line_no = 0, reported = 0;
  auto encode = [&](const std::string& text) {
    ids.clear();
    check_status(sp.Encode(text, &ids), "encode line " + std::to_string(line_no));
    writer.add_sentence(ids);
  };
  if (o.format == "text") {
    // One sentence per non-blank line; one or more blank lines end a document.
    bool open = false;
    while (std::getline(in, line)) {
      ++line_no;
      line = strip_cr(line);
      if (blank(line)) {
        if (open) writer.end_document();
        open = false;
        continue;
      }
      encode(line);
      open = true;
      if (line_no - reported >= 4096) {
        progress.advance(static_cast<uint64_t>(line_no - reported));
        reported = line_no;
      }
    }
    if (open) writer.end_document();
  } else {
    // segments: a line with the count k, then k lines; one document per record.
    while (std::getline(in, line)) {
      ++line_no;
      line = strip_cr(line);
      char* end = nullptr;
      const long k = std::strtol(line.c_str(), &end, 10);
      if (line.empty() || *end != '\0' || k < 0)
        throw ConfigError(o.input + ":" + std::to_string(line_no) + ": error: segment count: expected a number, found '" +
                          line.substr(0, 40) + "'");
      for (long i = 0; i < k; ++i) {
        if (!std::getline(in, line))
          throw ConfigError(o.input + ":" + std::to_string(line_no) + ": error: record: expected " + std::to_string(k) +
                            " segments, the file ends after " + std::to_string(i));
        ++line_no;
        encode(strip_cr(line));
      }
      writer.end_document();
      if (line_no - reported >= 4096) {
        progress.advance(static_cast<uint64_t>(line_no - reported));
        reported = line_no;
      }
    }
  }
  progress.advance(static_cast<uint64_t>(line_no - reported));
  progress.finish();
  writer.save(o.out);
}

int main_impl(int argc, char** argv) {
  CLI::App app{"flexnas-tokenize: SentencePiece training and encoding into token caches (no LibTorch)"};
  app.require_subcommand(1);
  Options o;
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("--error-file", o.error_file, "also write the error message to this file");
    cmd->add_flag("--quiet", o.quiet, "no progress output");
  };
  auto* train = app.add_subcommand("train", "train a SentencePiece model with flexnas's special ids");
  train->add_option("--corpus", o.corpus, "plain-text files, one sentence per line")->required()->expected(1, -1);
  train->add_option("--vocab-size", o.train.vocab_size, "vocabulary size incl. 5 special ids")->required();
  train->add_option("--out", o.train.out, "model file to write")->required();
  train->add_option("--model-type", o.train.model_type, "unigram | bpe");
  train->add_option("--seed", o.train.seed, "random seed");
  train->add_option("--character-coverage", o.train.character_coverage, "character coverage");
  train->add_option("--max-sentences", o.train.max_sentences, "use at most N sentences (0 = all)");
  train->add_option("--threads", o.train.threads, "trainer threads")->check(CLI::PositiveNumber);
  common(train);
  auto* encode = app.add_subcommand("encode", "encode a file into a token cache");
  encode->add_option("--model", o.model, "SentencePiece model")->required();
  encode->add_option("--input", o.input, "input file")->required();
  encode->add_option("--format", o.format, "text | segments");
  encode->add_option("--out", o.out, "token cache to write")->required();
  common(encode);
  auto* info = app.add_subcommand("info", "print vocab_size and hash of a model");
  info->add_option("--model", o.model, "SentencePiece model")->required();
  info->add_option("--out", o.out, "write to this file instead of stdout");
  common(info);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (o.quiet) Progress::set_enabled(false);
  if (train->parsed()) run_train(o);
  if (encode->parsed()) run_encode(o);
  if (info->parsed()) run_info(o);
  return 0;
}

void write_error_file(const std::string& path, const std::string& message) {
  if (path.empty()) return;
  std::ofstream out(path, std::ios::trunc);
  out << message << "\n";
}

}  // namespace
}  // namespace flexnas::datasets

int main(int argc, char** argv) {
  std::string error_file;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--error-file") error_file = argv[i + 1];
  try {
    return flexnas::datasets::main_impl(argc, argv);
  } catch (const flexnas::ConfigError& e) {
    // With --error-file the caller reports the message; printing it here too would show it twice.
    if (error_file.empty()) std::cerr << e.what() << "\n";
    flexnas::datasets::write_error_file(error_file, e.what());
    return 2;
  } catch (const std::exception& e) {
    if (error_file.empty()) std::cerr << "flexnas-tokenize: error: " << e.what() << "\n";
    flexnas::datasets::write_error_file(error_file, e.what());
    return 1;
  }
}
