#include "datasets/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <strings.h>

#include "design_space/atomic_file.h"
#include "design_space/error.h"

namespace flexnas::datasets {
namespace fs = std::filesystem;

namespace {

std::string strip_cr(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}
bool blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

std::ifstream open_or_throw(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": error: " + what + ": cannot open file");
  return in;
}

}  // namespace

std::vector<TextDocument> read_plain_text(const std::string& path) {
  auto in = open_or_throw(path, "plain text");
  std::vector<TextDocument> docs;
  std::string line;
  bool open = false;
  while (std::getline(in, line)) {
    line = strip_cr(line);
    if (blank(line)) {
      open = false;
      continue;
    }
    if (!open) docs.emplace_back();
    docs.back().sentences.push_back(line);
    open = true;
  }
  return docs;
}

const std::vector<std::string>& brown_genres() {
  static const std::vector<std::string> genres = {
      "adventure", "belles_lettres", "editorial", "fiction",  "government", "hobbies",  "humor",           "learned",
      "lore",      "mystery",        "news",      "religion", "reviews",    "romance",  "science_fiction"};
  return genres;
}

BrownDocument read_brown_file(const std::string& path, const std::string& id, const std::string& genre) {
  auto in = open_or_throw(path, "Brown text " + id);
  BrownDocument doc{id, genre, {}};
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = strip_cr(line);
    if (blank(line)) continue;
    std::vector<TaggedWord> sentence;
    size_t pos = 0;
    while (pos < line.size()) {
      while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
      if (pos >= line.size()) break;
      size_t end = pos;
      while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
      const std::string token = line.substr(pos, end - pos);
      const size_t slash = token.rfind('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == token.size())
        throw ConfigError(path + ":" + std::to_string(line_no) + ":" + std::to_string(pos + 1) +
                          ": error: token: '" + token + "' is not word/TAG (a word, a '/', a tag)");
      sentence.push_back({token.substr(0, slash), token.substr(slash + 1)});
      pos = end;
    }
    doc.sentences.push_back(std::move(sentence));
  }
  return doc;
}

std::vector<BrownDocument> read_brown(const std::string& dir) {
  const std::string cats = dir + "/cats.txt";
  auto in = open_or_throw(cats, "Brown categories (run scripts/fetch-data.sh)");
  const auto& genres = brown_genres();
  std::vector<BrownDocument> docs;
  std::set<std::string> seen;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = strip_cr(line);
    if (blank(line)) continue;
    std::istringstream fields(line);
    std::string id, genre, extra;
    fields >> id >> genre;
    const auto where = cats + ":" + std::to_string(line_no);
    if (genre.empty()) throw ConfigError(where + ": error: line: expected '<text id> <genre>', found '" + line + "'");
    if (fields >> extra) throw ConfigError(where + ": error: line: expected two fields, found more in '" + line + "'");
    if (std::find(genres.begin(), genres.end(), genre) == genres.end()) {
      std::string allowed;
      for (const auto& g : genres) allowed += (allowed.empty() ? "" : ", ") + g;
      throw ConfigError(where + ":" + std::to_string(line.find(genre) + 1) + ": error: genre: '" + genre +
                        "' is not a Brown genre; allowed: " + allowed);
    }
    if (!seen.insert(id).second) throw ConfigError(where + ": error: text id: '" + id + "' is listed twice");
    docs.push_back(read_brown_file(dir + "/" + id, id, genre));
  }
  if (docs.empty()) throw ConfigError(cats + ": error: no texts listed");
  return docs;
}

std::string brown_sentence_text(const std::vector<TaggedWord>& sentence) {
  std::string out;
  for (const auto& w : sentence) {
    if (!out.empty()) out += ' ';
    out += w.word;
  }
  return out;
}

const std::vector<std::string>& coarse_pos_tags() {
  static const std::vector<std::string> tags = {"NOUN", "VERB", "ADJ", "ADV", "PRON", "DET",
                                                "ADP",  "NUM",  "CONJ", "PRT", ".",    "X"};
  return tags;
}

int64_t coarse_pos_id(const std::string& brown_tag) {
  enum { NOUN, VERB, ADJ, ADV, PRON, DET, ADP, NUM, CONJ, PRT, PUNCT, X };
  static const std::map<std::string, int64_t> table = {
      {"nn", NOUN},  {"nns", NOUN},  {"np", NOUN},   {"nps", NOUN},  {"nr", NOUN},   {"nrs", NOUN},
      {"vb", VERB},  {"vbd", VERB},  {"vbg", VERB},  {"vbn", VERB},  {"vbz", VERB},  {"be", VERB},
      {"bed", VERB}, {"bedz", VERB}, {"beg", VERB},  {"bem", VERB},  {"ben", VERB},  {"ber", VERB},
      {"bez", VERB}, {"do", VERB},   {"dod", VERB},  {"doz", VERB},  {"hv", VERB},   {"hvd", VERB},
      {"hvg", VERB}, {"hvn", VERB},  {"hvz", VERB},  {"md", VERB},   {"jj", ADJ},    {"jjr", ADJ},
      {"jjs", ADJ},  {"jjt", ADJ},   {"od", ADJ},    {"rb", ADV},    {"rbr", ADV},   {"rbt", ADV},
      {"rn", ADV},   {"ql", ADV},    {"qlp", ADV},   {"wrb", ADV},   {"pn", PRON},   {"pp", PRON},
      {"ppl", PRON}, {"ppls", PRON}, {"ppo", PRON},  {"pps", PRON},  {"ppss", PRON}, {"wp", PRON},
      {"wpo", PRON}, {"wps", PRON},  {"at", DET},    {"abn", DET},   {"abx", DET},   {"ap", DET},
      {"dt", DET},   {"dti", DET},   {"dts", DET},   {"dtx", DET},   {"wdt", DET},   {"ex", DET},
      {"abl", DET},  {"in", ADP},    {"cd", NUM},    {"cc", CONJ},   {"cs", CONJ},   {"rp", PRT},
      {"to", PRT},   {"uh", X},      {"fw", X},      {"nil", X},     {".", PUNCT},   {",", PUNCT},
      {":", PUNCT},  {"(", PUNCT},   {")", PUNCT},   {"--", PUNCT},  {"'", PUNCT},   {"''", PUNCT},
      {"``", PUNCT}, {"`", PUNCT},   {"*", ADV}};
  std::string t = brown_tag;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (t.rfind("fw-", 0) == 0) return X;  // foreign words
  if (auto it = table.find(t); it != table.end()) return it->second;
  // Compound tags ("ppss+md"): the first part. Suffixes -tl, -hl, -nc: dropped.
  if (const size_t plus = t.find('+'); plus != std::string::npos && plus > 0) t = t.substr(0, plus);
  if (const size_t dash = t.find('-'); dash != std::string::npos && dash > 0) t = t.substr(0, dash);
  // Possessive '$' and negation '*' markers ("pp$$", "bez*", "nn$").
  while (t.size() > 1 && (t.back() == '$' || t.back() == '*')) t.pop_back();
  if (auto it = table.find(t); it != table.end()) return it->second;
  if (t == "pp$" || t.rfind("pp", 0) == 0 || t.rfind("wp", 0) == 0) return PRON;
  return X;
}

const std::vector<std::pair<std::string, int64_t>>& spam_assassin_groups() {
  static const std::vector<std::pair<std::string, int64_t>> groups = {
      {"easy-ham-1", 2500}, {"easy-ham-2", 1400}, {"hard-ham-1", 250}, {"spam-1", 500}, {"spam-2", 1396}};
  return groups;
}

std::string email_text(const std::string& raw) {
  // Header block: up to the first empty line. Folded lines (starting with space/tab) continue a header.
  std::string subject, body;
  size_t pos = 0;
  bool in_subject = false, headers_done = false;
  while (pos < raw.size() && !headers_done) {
    size_t end = raw.find('\n', pos);
    if (end == std::string::npos) end = raw.size();
    std::string line = strip_cr(raw.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) {
      headers_done = true;
      break;
    }
    if ((line[0] == ' ' || line[0] == '\t')) {
      if (in_subject) subject += " " + line.substr(line.find_first_not_of(" \t"));
      continue;
    }
    in_subject = false;
    if (line.size() >= 8 && strncasecmp(line.c_str(), "subject:", 8) == 0 && subject.empty()) {
      in_subject = true;
      const size_t start = line.find_first_not_of(" \t", 8);
      subject = start == std::string::npos ? "" : line.substr(start);
    }
  }
  body = pos < raw.size() ? raw.substr(pos) : std::string();
  return "Subject: " + subject + "\n" + body;
}

std::vector<Email> read_spam_assassin(const std::string& dir) {
  std::vector<Email> emails;
  for (const auto& [group, expected] : spam_assassin_groups()) {
    const std::string gdir = dir + "/" + group;
    if (!fs::is_directory(gdir))
      throw ConfigError(gdir + ": error: SpamAssassin group directory missing (run scripts/fetch-data.sh)");
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(gdir))
      if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const std::string content = read_file(file);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(content);
      } catch (const nlohmann::json::parse_error& e) {
        // byte offset -> line:column
        const size_t at = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, content.size());
        const auto line = 1 + std::count(content.begin(), content.begin() + static_cast<long>(at), '\n');
        const size_t nl = content.rfind('\n', at == 0 ? 0 : at - 1);
        const size_t col = nl == std::string::npos ? at + 1 : at - nl;
        throw ConfigError(file + ":" + std::to_string(line) + ":" + std::to_string(col) +
                          ": error: e-mail: invalid JSON (" + e.what() + ")");
      }
      auto field = [&](const char* key) -> std::string {
        if (!j.is_object()) throw ConfigError(file + ":1:1: error: e-mail: expected a JSON object, found " + std::string(j.type_name()));
        auto it = j.find(key);
        if (it == j.end()) throw ConfigError(file + ":1:1: error: " + key + ": missing; an e-mail needs id, group, text");
        if (!it->is_string())
          throw ConfigError(file + ":1:1: error: " + key + ": expected a string, found " + std::string(it->type_name()));
        return it->get<std::string>();
      };
      Email e;
      e.id = field("id");
      e.group = field("group");
      if (e.group != group)
        throw ConfigError(file + ":1:1: error: group: '" + e.group + "' but the file is in directory '" + group + "'");
      e.spam = group.rfind("spam", 0) == 0;
      e.text = email_text(field("text"));
      emails.push_back(std::move(e));
    }
  }
  return emails;
}

}  // namespace flexnas::datasets
