// Readers: plain text, Brown, SpamAssassin, GLUE; located errors for bad files.
#include <gtest/gtest.h>

#include "datasets/corpus.h"
#include "datasets/glue.h"
#include "design_space/error.h"
#include "test_util.h"

namespace flexnas::datasets {
namespace testing {
/// Writes tiny GLUE TSVs in the distribution's format for every task.
void write_glue(const std::string& root) {
  const std::string t = "\t";
  write_text(root + "/CoLA/train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n");
  write_text(root + "/CoLA/dev.tsv", "gj04\t1\t\tThe sailors rode the breeze.\n");
  write_text(root + "/SST-2/train.tsv", "sentence\tlabel\nhide new secretions \t0\na charming film \t1\n");
  write_text(root + "/SST-2/dev.tsv", "sentence\tlabel\nit 's a charming journey . \t1\n");
  const std::string mrpc = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother.\tHe accused his brother.\n";
  write_text(root + "/MRPC/train.tsv", mrpc + "0\t1\t2\tA b.\tC d.\n");
  write_text(root + "/MRPC/dev.tsv", mrpc);
  const std::string qqp = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow?\tWhy?\t0\n";
  write_text(root + "/QQP/train.tsv", qqp);
  write_text(root + "/QQP/dev.tsv", qqp + "4\t5\t6\tWhat is it?\tWhat's it?\t1\n");
  const std::string sts = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  write_text(root + "/STS-B/train.tsv", sts + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n");
  write_text(root + "/STS-B/dev.tsv", sts + "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA woman.\t0.5\n");
  const std::string mnli =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
      "sentence1\tsentence2\tlabel1\tgold_label\n";
  write_text(root + "/MNLI/train.tsv", mnli + "0\t1\t1n\tgov\t(a)\t(b)\t(A)\t(B)\tConceptually cream.\tProduct.\tneutral\tneutral\n");
  write_text(root + "/MNLI/dev_matched.tsv", mnli + "0\t1\t1e\tgov\t(a)\t(b)\t(A)\t(B)\tThe new rights.\tRights.\tentailment\tentailment\n");
  write_text(root + "/MNLI/dev_mismatched.tsv", mnli + "0\t1\t1c\tgov\t(a)\t(b)\t(A)\t(B)\tYour gift.\tNo gift.\tcontradiction\tcontradiction\n");
  const std::string qnli = "index\tquestion\tsentence\tlabel\n0\tWhen?\tIn May.\tentailment\n1\tWho?\tNobody knows.\tnot_entailment\n";
  write_text(root + "/QNLI/train.tsv", qnli);
  write_text(root + "/QNLI/dev.tsv", qnli);
  const std::string rte = "index\tsentence1\tsentence2\tlabel\n0\tNo weapons.\tWeapons found.\tnot_entailment\n";
  write_text(root + "/RTE/train.tsv", rte);
  write_text(root + "/RTE/dev.tsv", rte);
  const std::string wnli = "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin.\tThe pin had a hole.\t1\n";
  write_text(root + "/WNLI/train.tsv", wnli);
  write_text(root + "/WNLI/dev.tsv", wnli);
}

}  // namespace testing

namespace {
using testing::write_glue;
using testing::expect_error;
using testing::TempDir;
using testing::test_data;
using testing::write_text;

TEST(PlainText, DocumentsAndSentences) {
  TempDir dir;
  write_text(dir / "t.txt", "\n\nfirst one\r\nsecond one\n\n\n  \nthird\n");
  const auto docs = read_plain_text(dir / "t.txt");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].sentences, (std::vector<std::string>{"first one", "second one"}));
  EXPECT_EQ(docs[1].sentences, (std::vector<std::string>{"third"}));
  expect_error<ConfigError>([&] { read_plain_text(dir / "missing.txt"); }, {"missing.txt", "cannot open"});
}

TEST(Brown, ReadsTextsGenresAndTags) {
  const auto docs = read_brown(test_data("brown"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].id, "ca01");
  EXPECT_EQ(docs[0].genre, "news");
  EXPECT_EQ(docs[1].genre, "lore");
  ASSERT_EQ(docs[0].sentences.size(), 2u);
  EXPECT_EQ(brown_sentence_text(docs[0].sentences[0]), "The Fulton County Grand Jury said Friday .");
  // the tag is what follows the LAST slash: "1/2/cd" is the word "1/2"
  EXPECT_EQ(docs[0].sentences[1][4].word, "1/2");
  EXPECT_EQ(docs[0].sentences[1][4].tag, "cd");
  EXPECT_EQ(docs[0].sentences[0][1].tag, "np-tl");
  EXPECT_EQ(brown_genres().size(), 15u);
}

TEST(Brown, CoarsePosTags) {
  const auto& tags = coarse_pos_tags();
  auto tag = [&](const std::string& t) { return tags[static_cast<size_t>(coarse_pos_id(t))]; };
  EXPECT_EQ(tags.size(), 12u);
  EXPECT_EQ(tag("at"), "DET");
  EXPECT_EQ(tag("np-tl"), "NOUN");
  EXPECT_EQ(tag("nn$"), "NOUN");
  EXPECT_EQ(tag("NN-TL"), "NOUN");
  EXPECT_EQ(tag("vbd"), "VERB");
  EXPECT_EQ(tag("bez*"), "VERB");
  EXPECT_EQ(tag("ppss+md"), "PRON");
  EXPECT_EQ(tag("pp$$"), "PRON");
  EXPECT_EQ(tag("jj-hl"), "ADJ");
  EXPECT_EQ(tag("*"), "ADV");
  EXPECT_EQ(tag("in"), "ADP");
  EXPECT_EQ(tag("cd"), "NUM");
  EXPECT_EQ(tag("cs"), "CONJ");
  EXPECT_EQ(tag("to"), "PRT");
  EXPECT_EQ(tag("."), ".");
  EXPECT_EQ(tag("--"), ".");
  EXPECT_EQ(tag("``"), ".");
  EXPECT_EQ(tag("fw-nn"), "X");
  EXPECT_EQ(tag("zzz"), "X");
}

TEST(Brown, BadFilesAreLocated) {
  TempDir dir;
  write_text(dir / "b/cats.txt", "ca01 news\nca02 poetry\n");
  write_text(dir / "b/ca01", "\tThe/at jury/nn\n");
  expect_error<ConfigError>([&] { read_brown(dir / "b"); },
                            {"cats.txt:2:6: error: genre: 'poetry' is not a Brown genre; allowed: adventure"});
  write_text(dir / "b/cats.txt", "ca01 news\n");
  write_text(dir / "b/ca01", "\tThe/at jury/nn\n\n\tsaid/vbd nothing ./.\n");
  expect_error<ConfigError>([&] { read_brown(dir / "b"); }, {"ca01:3:11: error: token: 'nothing' is not word/TAG"});
  write_text(dir / "b/cats.txt", "ca01 news\nca01 news\n");
  write_text(dir / "b/ca01", "\tThe/at\n");
  expect_error<ConfigError>([&] { read_brown(dir / "b"); }, {"cats.txt:2: error: text id: 'ca01' is listed twice"});
  expect_error<ConfigError>([&] { read_brown(dir / "none"); }, {"cats.txt", "cannot open", "fetch-data.sh"});
}

TEST(SpamAssassin, ReadsGroupsAndLabels) {
  const auto mails = read_spam_assassin(test_data("spam-assassin"));
  ASSERT_EQ(mails.size(), 6u);
  int spam = 0;
  for (const auto& m : mails) spam += m.spam;
  EXPECT_EQ(spam, 3);
  EXPECT_EQ(mails[0].group, "easy-ham-1");
  EXPECT_FALSE(mails[0].spam);
  // headers dropped, Subject kept (folded continuation joined), body kept
  EXPECT_EQ(mails[0].text, "Subject: Re: meeting notes\nSee you at the meeting tomorrow.\nBye\n");
  EXPECT_EQ(mails[5].text, "Subject: \nNo subject here, only a free offer to click.\n");
  EXPECT_TRUE(mails[4].spam);
  EXPECT_EQ(spam_assassin_groups().size(), 5u);
}

TEST(SpamAssassin, HeaderStripping) {
  EXPECT_EQ(email_text("From: x\r\nSubject: hi\r\nX-A: b\r\n\r\nbody\r\n"), "Subject: hi\nbody\r\n");
  EXPECT_EQ(email_text("Subject: only headers"), "Subject: only headers\n");
}

TEST(SpamAssassin, BadFilesAreLocated) {
  TempDir dir;
  for (const auto& [g, n] : spam_assassin_groups()) write_text(dir / ("s/" + g + "/1.json"),
                                                               "{\"id\":\"1\",\"group\":\"" + g + "\",\"text\":\"Subject: a\\n\\nb\"}");
  EXPECT_EQ(read_spam_assassin(dir / "s").size(), 5u);
  write_text(dir / "s/spam-1/2.json", "{\"id\":\"2\",\n \"group\": \"spam-1\",\n \"text\": 3}");
  expect_error<ConfigError>([&] { read_spam_assassin(dir / "s"); }, {"2.json:1:1: error: text: expected a string, found number"});
  write_text(dir / "s/spam-1/2.json", "{\"id\":\"2\",\n \"group\": \"spam-2\", \"text\": \"x\"}");
  expect_error<ConfigError>([&] { read_spam_assassin(dir / "s"); }, {"2.json", "group: 'spam-2' but the file is in directory 'spam-1'"});
  write_text(dir / "s/spam-1/2.json", "{\"id\":\"2\",\n \"group\": \"spam-1\",, \"text\": \"x\"}");
  expect_error<ConfigError>([&] { read_spam_assassin(dir / "s"); }, {"2.json:2:", "invalid JSON"});
  write_text(dir / "s/spam-1/2.json", "{\"group\": \"spam-1\", \"text\": \"x\"}");
  expect_error<ConfigError>([&] { read_spam_assassin(dir / "s"); }, {"2.json:1:1: error: id: missing"});
  std::filesystem::remove_all(dir / "s/hard-ham-1");
  expect_error<ConfigError>([&] { read_spam_assassin(dir / "s"); }, {"hard-ham-1", "group directory missing"});
}

TEST(Glue, ReadsAllNineTasks) {
  TempDir dir;
  write_glue(dir / "glue");
  auto read = [&](const std::string& task, const std::string& split) {
    return read_glue_tsv(dir / ("glue/" + glue_directory(task) + "/" + split + ".tsv"), task);
  };
  auto cola = read("cola", "train");
  ASSERT_EQ(cola.size(), 2u);
  EXPECT_EQ(cola[0].segments, (std::vector<std::string>{"Our friends won't buy this analysis."}));
  EXPECT_EQ(cola[1].label, 0);
  EXPECT_EQ(read("sst2", "train")[1].label, 1);
  auto mrpc = read("mrpc", "train");
  EXPECT_EQ(mrpc[0].segments, (std::vector<std::string>{"Amrozi accused his brother.", "He accused his brother."}));
  EXPECT_EQ(mrpc[0].label, 1);
  EXPECT_EQ(read("qqp", "dev")[1].label, 1);
  EXPECT_DOUBLE_EQ(read("stsb", "train")[0].target, 5.0);
  EXPECT_DOUBLE_EQ(read("stsb", "dev")[0].target, 0.5);
  EXPECT_EQ(read("mnli", "train")[0].label, 1);           // neutral
  EXPECT_EQ(read("mnli", "dev_matched")[0].label, 0);     // entailment
  EXPECT_EQ(read("mnli", "dev_mismatched")[0].label, 2);  // contradiction
  EXPECT_EQ(read("mnli", "dev_mismatched")[0].segments[1], "No gift.");
  EXPECT_EQ(read("qnli", "dev")[1].label, 1);
  EXPECT_EQ(read("rte", "dev")[0].label, 1);
  EXPECT_EQ(read("wnli", "dev")[0].label, 1);
  EXPECT_EQ(glue_tasks().size(), 9u);
  EXPECT_EQ(glue_splits("mnli"), (std::vector<std::string>{"train", "dev_matched", "dev_mismatched"}));
}

TEST(Glue, BadFilesAreLocated) {
  TempDir dir;
  write_text(dir / "rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n");
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "rte.tsv", "rte"); },
                            {"rte.tsv:3: error: column 'label': 'maybe'; allowed: entailment, not_entailment"});
  write_text(dir / "sts.tsv", "sentence1\tsentence2\tscore\na\tb\thigh\n");
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "sts.tsv", "stsb"); },
                            {"sts.tsv:2: error: column 'score': expected a number, found 'high'"});
  write_text(dir / "qqp.tsv", "id\tquestion1\tquestion2\n1\ta\tb\n");
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "qqp.tsv", "qqp"); },
                            {"qqp.tsv:1: error: column 'is_duplicate': missing from the header; found columns: id, question1, question2"});
  write_text(dir / "sst.tsv", "sentence\tlabel\ngood\t1\nbad\n");
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "sst.tsv", "sst2"); },
                            {"sst.tsv:3: error: row: expected 2 tab-separated fields, found 1"});
  write_text(dir / "cola.tsv", "x\t2\t\tA sentence.\n");
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "cola.tsv", "cola"); },
                            {"cola.tsv:1: error: column 2 (label): '2'; allowed: 0, 1"});
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "cola.tsv", "colaa"); }, {"GLUE task: 'colaa'; allowed: cola, mnli"});
  expect_error<ConfigError>([&] { read_glue_tsv(dir / "none.tsv", "rte"); }, {"none.tsv", "cannot open", "RTE/"});
}

}  // namespace
}  // namespace flexnas::datasets
