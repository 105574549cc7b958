// Enumeration: counts of spec §1.6, the reference's library order (checked against a literal
// transcription of the reference's nested loops), and the index <-> model dict bijection.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <set>

#include "tests/design_space/test_catalog.h"
#include "design_space/arch_graph.h"
#include "design_space/enumeration.h"

namespace flexnas {
namespace {

const std::string kExamples = FLEXNAS_SOURCE_DIR "/examples/";

DesignSpace space_named(const std::string& name) { return load_design_space(kExamples + name, testing::test_catalog()); }

EnumerationSettings settings(int64_t lps, bool het = false, bool inc = false) {
  EnumerationSettings s;
  s.layers_per_stack = lps;
  s.heterogeneous_feed_forward = het;
  s.increasing = inc;
  return s;
}

// itertools.product(range(R), repeat=s) / combinations_with_replacement(range(R), s), in order.
std::vector<std::vector<int>> tuples(int R, int s, bool multiset) {
  std::vector<std::vector<int>> out;
  std::vector<int> cur;
  std::function<void(int)> rec = [&](int lo) {
    if (int(cur.size()) == s) {
      out.push_back(cur);
      return;
    }
    for (int d = multiset ? lo : 0; d < R; ++d) {
      cur.push_back(d);
      rec(d);
      cur.pop_back();
    }
  };
  rec(0);
  return out;
}

// Cartesian product of per-position option lists, rightmost fastest.
template <typename T>
std::vector<std::vector<T>> product(const std::vector<std::vector<T>>& options) {
  std::vector<std::vector<T>> out{{}};
  for (const auto& opts : options) {
    std::vector<std::vector<T>> next;
    for (const auto& prefix : out)
      for (const auto& o : opts) {
        auto p = prefix;
        p.push_back(o);
        next.push_back(p);
      }
    out.swap(next);
  }
  return out;
}

// A literal transcription of GraphLib.build_library's loops (spec §1.5).
std::vector<Architecture> brute_force(const DesignSpace& sp, const EnumerationSettings& st) {
  std::vector<Architecture> out;
  const bool inc = st.increasing;
  for (int64_t L : sp.encoder_layers) {
    const int s = int(L / st.layers_per_stack);
    auto N = tuples(int(sp.num_heads.size()), s, inc);
    auto H = tuples(int(sp.hidden_sizes.size()), s, inc);
    auto O = tuples(int(sp.op_types.size()), s, false);
    auto NFF = tuples(int(sp.nff.size()), s, inc);
    for (const auto& n : N)
      for (const auto& h : H)
        for (const auto& o : O)
          for (const auto& nff : NFF) {
            std::vector<std::vector<std::string>> param_options;
            for (int k = 0; k < s; ++k) param_options.push_back(sp.op_params[o[k]]);
            std::vector<std::vector<std::vector<int64_t>>> f_options;  // per stack: its width lists
            for (int k = 0; k < s; ++k) {
              const int m = int(sp.nff[nff[k]]);
              std::vector<std::vector<int64_t>> lists;
              if (!st.heterogeneous_feed_forward) {
                for (int64_t w : sp.ffn_widths) lists.push_back(std::vector<int64_t>(size_t(m), w));
              } else {
                for (const auto& t : tuples(int(sp.ffn_widths.size()), m, inc)) {
                  std::vector<int64_t> ws;
                  for (int d : t) ws.push_back(sp.ffn_widths[d]);
                  lists.push_back(ws);
                }
              }
              f_options.push_back(lists);
            }
            for (const auto& p : product(param_options))
              for (const auto& f : product(f_options)) {
                Architecture a;
                for (int k = 0; k < s; ++k) {
                  LayerSpec layer;
                  layer.heads = sp.num_heads[n[k]];
                  layer.hidden = sp.hidden_sizes[h[k]];
                  layer.op = sp.op_types[o[k]];
                  layer.param = p[k];
                  layer.ffn = f[k];
                  for (int64_t j = 0; j < st.layers_per_stack; ++j) a.layers.push_back(layer);
                }
                out.push_back(a);
              }
          }
  }
  return out;
}

void expect_same_order(const std::string& file, const EnumerationSettings& st, size_t expected) {
  const DesignSpace sp = space_named(file);
  const Enumerator e(sp, st);
  const auto reference = brute_force(sp, st);
  ASSERT_EQ(reference.size(), expected);
  ASSERT_EQ(e.count(), BigCount(expected));
  for (size_t i = 0; i < reference.size(); ++i) {
    const Architecture a = e.at(i);
    ASSERT_EQ(a, reference[i]) << file << " index " << i << ": " << a.to_canonical_string() << " vs "
                               << reference[i].to_canonical_string();
    ASSERT_EQ(e.index_of(a), BigCount(i)) << file << " index " << i;
  }
}

TEST(Enumeration, TestSpaceLps2MatchesReferenceOrder) { expect_same_order("design_space_test.yaml", settings(2), 9312); }
TEST(Enumeration, SmallSpaceLps2MatchesReferenceOrder) { expect_same_order("design_space_small.yaml", settings(2), 63756); }
TEST(Enumeration, TestSpaceHeterogeneousFfnMatchesReferenceOrder) {
  expect_same_order("design_space_test.yaml", settings(2, true), 57840);
}
TEST(Enumeration, TestSpaceIncreasingMatchesReferenceOrder) {
  expect_same_order("design_space_test.yaml", settings(2, false, true), 3984);
}
TEST(Enumeration, SmallSpaceHeterogeneousIncreasingMatchesLoops) {
  // No reference count exists for this combination; the loops are the reference's definition.
  const DesignSpace sp = space_named("design_space_small.yaml");
  const auto reference = brute_force(sp, settings(2, true, true));
  expect_same_order("design_space_small.yaml", settings(2, true, true), reference.size());
}

struct CountRow {
  const char* file;
  int64_t lps;
  bool het, inc;
  const char* total;
};

TEST(Enumeration, CountsOfSpecSection16) {
  const CountRow rows[] = {
      {"design_space_test.yaml", 2, false, false, "9312"},
      {"design_space_test.yaml", 1, false, false, "84943872"},
      {"design_space_test.yaml", 1, true, false, "3317817600"},
      {"design_space_test.yaml", 2, true, false, "57840"},
      {"design_space_test.yaml", 2, false, true, "3984"},
      {"design_space_small.yaml", 2, false, false, "63756"},
      {"design_space_small.yaml", 1, false, false, "4032821520"},
      {"design_space_small.yaml", 2, true, false, "1193556"},
      {"design_space.yaml", 2, false, false, "432653508"},
      {"design_space.yaml", 1, false, false, "186694503874009488"},
  };
  for (const auto& row : rows) {
    const DesignSpace sp = space_named(row.file);
    const Enumerator e(sp, settings(row.lps, row.het, row.inc));
    EXPECT_EQ(to_string_big(e.count()), row.total) << row.file << " lps " << row.lps;
  }
  const Enumerator full(space_named("design_space.yaml"), settings(1, true));
  EXPECT_EQ(to_scientific(full.count()).substr(0, 5), "2.196");
  EXPECT_EQ(to_string_big(full.count()), "21964384040055167554704");
}

TEST(Enumeration, PerDepthCounts) {
  const Enumerator e(space_named("design_space.yaml"), settings(2));
  ASSERT_EQ(e.count_per_depth().size(), 3u);
  EXPECT_EQ(to_string_big(e.count_per_depth()[0]), "756");
  EXPECT_EQ(to_string_big(e.count_per_depth()[1]), "571536");
  EXPECT_EQ(to_string_big(e.count_per_depth()[2]), "432081216");
}

TEST(Enumeration, BijectionOnRandomIndicesOfHugeSpaces) {
  const DesignSpace sp = space_named("design_space.yaml");
  for (const auto& st : {settings(1, true), settings(1), settings(2, true, true), settings(2, true)}) {
    const Enumerator e(sp, st);
    std::mt19937_64 rng(7);
    for (int i = 0; i < 2000; ++i) {
      const BigCount index = uniform_big(e.count(), rng);
      const Architecture a = e.at(index);
      ASSERT_EQ(e.index_of(a), index) << to_string_big(index);
      const Architecture round_trip = architecture_from_json(nlohmann::json::parse(a.to_canonical_string()));
      ASSERT_EQ(round_trip, a);
    }
    EXPECT_EQ(e.index_of(e.at(e.count() - 1)), e.count() - 1);
  }
}

TEST(Enumeration, SampleIsDistinctSeededAndInRange) {
  const Enumerator e(space_named("design_space.yaml"), settings(1, true));
  std::mt19937_64 a(3), b(3), c(4);
  const auto s1 = e.sample(500, a), s2 = e.sample(500, b), s3 = e.sample(500, c);
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, s3);
  EXPECT_EQ(std::set<BigCount>(s1.begin(), s1.end()).size(), 500u);
  for (BigCount i : s1) EXPECT_LT(i, e.count());
  // Asking for more than the space holds returns all of it.
  const Enumerator small(space_named("design_space_test.yaml"), settings(2));
  std::mt19937_64 r(0);
  EXPECT_EQ(small.sample(100000, r).size(), 9312u);
}

TEST(Enumeration, AllHashesDistinctInTestLibrary) {
  const Enumerator e(space_named("design_space_test.yaml"), settings(2));
  std::set<std::string> hashes;
  for (BigCount i = 0; i < e.count(); ++i) hashes.insert(architecture_hash(e.at(i)));
  EXPECT_EQ(hashes.size(), 9312u);
}

TEST(Enumeration, IndexOfExplainsArchitecturesOutsideTheSpace) {
  const Enumerator e(space_named("design_space_test.yaml"), settings(2));
  Architecture a = e.at(5);
  a.layers[0].hidden = 192;
  a.layers[1].hidden = 192;
  try {
    e.index_of(a, "arch.json");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("arch.json: not in the design space"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("h = 192 is not in hidden_size"), std::string::npos) << err.what();
  }
  Architecture b = e.at(5);
  b.layers[1].heads = 4;  // breaks the two-identical-layers stack
  EXPECT_FALSE(e.contains(b));
  EXPECT_TRUE(e.contains(e.at(9000)));
}

TEST(Enumeration, LayersPerStackMustDivideDepths) {
  const DesignSpace sp = space_named("design_space.yaml");  // depths 2, 4, 6
  try {
    Enumerator e(sp, settings(4));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& err) {
    EXPECT_EQ(std::string(err.what()), kExamples + "design_space.yaml:25:7: error: architecture.encoder_layers[0]: "
                                                   "encoder_layers value 2 is not divisible by layers_per_stack = 4 "
                                                   "(every depth must be a whole number of stacks)");
  }
}

TEST(Enumeration, BigNumberText) {
  EXPECT_EQ(to_string_big(0), "0");
  EXPECT_EQ(parse_big("340282366920938463463374607431768211455", "--index"), ~BigCount(0));
  EXPECT_THROW(parse_big("340282366920938463463374607431768211456", "--index"), ConfigError);
  EXPECT_THROW(parse_big("12a", "--index"), ConfigError);
  EXPECT_THROW(parse_big("", "--index"), ConfigError);
}

}  // namespace
}  // namespace flexnas
