// Transfer results pinned bit for bit: the tensor layout (every axis field), the plans between all
// pairs of one format (od and rp), and FNV-1a hashes of the target tensors after real transfers,
// for models of every op and parameter kind in both formats (sa-sdp/wma, l-dft/dct, c-k, ak
// variants, odd head counts, Funnel). The layout is described by the ops (OpDefinition::
// tensor_layout); this file holds that description to what transfer.cpp named by hand before.
// Regenerate (only for an intended change): FLEXNAS_WRITE_GOLDEN=1 transfer_golden_tests.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "design_space/architecture.h"
#include "transfer/transfer.h"

namespace flexnas::transfer {
namespace {

using models::FlexModel;
using models::ModelOptions;

const std::string kGolden = std::string(FLEXNAS_SOURCE_DIR) + "/tests/transfer/data/transfer_golden.txt";

// Standard format: every op, each parameter kind, even, odd and single head counts.
const std::vector<const char*> kStandard = {
    R"({"l":2,"h":[32,32],"n":[2,4],"o":["sa","sa"],"f":[[64],[64]],"p":["sdp","wma"]})",
    R"({"l":2,"h":[48,32],"n":[3,2],"o":["sa","sa"],"f":[[64],[32,32]],"p":["wma","sdp"]})",
    R"({"l":2,"h":[32,32],"n":[2,1],"o":["l","l"],"f":[[64],[64]],"p":["dft","dct"]})",
    R"({"l":2,"h":[32,48],"n":[4,3],"o":["l","sa"],"f":[[64],[64]],"p":["dct","sdp"]})",
    R"({"l":2,"h":[32,32],"n":[2,4],"o":["c","c"],"f":[[64],[64]],"p":["3","5"]})",
    R"({"l":2,"h":[48,32],"n":[3,1],"o":["c","c"],"f":[[64],[64]],"p":["9","7"]})",
    R"({"l":3,"h":[32,32,32],"n":[2,2,4],"o":["sa","l","c"],"f":[[64],[64],[64]],"p":["wma","dft","5"]})",
    R"({"l":2,"h":[32,32],"n":[4,2],"o":["ak","ak"],"f":[[64],[64]],"p":["qk","convfixed:3"]})",
    R"({"l":2,"h":[32,48],"n":[4,3],"o":["ak","ak"],"f":[[64],[64]],"p":["qk+convq:4","convk+qkconv:2"]})",
    R"({"l":2,"h":[32,32],"n":[4,1],"o":["ak","ak"],"f":[[64],[64]],"p":["qk+convfixed+convq+convk:3","convq+vconv+qkconv:6"]})",
    R"({"l":2,"h":[32,32],"n":[4,2],"o":["ak","sa"],"f":[[64],[64]],"p":["qk+convfixed+convq+convk+vconv+qkconv:2","sdp"]})",
    R"({"l":2,"h":[32,32],"n":[2,2],"o":["ak","ak"],"f":[[64],[64]],"p":["convfixed+convk:1","qk+vconv:5"]})",
    R"({"l":4,"h":[32,32,16,16],"n":[2,2,2,2],"o":["sa","l","ak","c"],"f":[[64],[64],[32],[32]],)"
    R"("p":["sdp","dct","qk+convq:3","3"],"pool":{"stride":[1,1,2,1],"decoder":2}})",
};

// Hetero format: every head type and parameter kind.
const std::vector<const char*> kHetero = {
    R"({"l":2,"h":[32,32],"f":[[64],[64]],"o":[["sa_sdp_16","sa_wma_16"],["l_dft_8","l_dct_8","sa_sdp_8","sa_wma_8"]]})",
    R"({"l":2,"h":[32,48],"f":[[64],[64]],"o":[["c_3_16","c_5_16"],["c_9_16","l_dft_16","sa_wma_16"]]})",
    R"({"l":2,"h":[32,32],"f":[[64],[64]],"o":[["ak_qk_16","ak_convfixed:3_16"],["ak_qk+convq:4_8","ak_convk+qkconv:2_8","c_3_8","sa_sdp_8"]]})",
    R"({"l":2,"h":[32,32],"f":[[64],[64]],"o":[["ak_qk+convfixed+convq+convk+vconv+qkconv:2_16","ak_convq+vconv+qkconv:6_16"],)"
    R"(["ak_convfixed+convk:1_16","ak_qk+vconv:5_16"]]})",
    R"({"l":2,"h":[32,32],"f":[[64],[64]],"o":[["sa_sdp_16","c_5_16"],["ak_qk+convq:3_16","l_dct_16"]],"pool":{"stride":[1,2],"decoder":1}})",
};

ModelOptions options(models::HeadType head) {
  ModelOptions o;
  o.vocab_size = 40;
  o.max_positions = 12;
  o.head = head;
  o.num_labels = 3;
  return o;
}

Architecture arch(const char* json) { return architecture_from_json(nlohmann::json::parse(json), "golden"); }

std::string describe(const Axis& a) {
  std::ostringstream s;
  s << int(a.kind) << ":" << a.size << ":" << a.groups << "x" << a.heads << "x" << a.dim << (a.centered_dim ? "c" : "");
  return s.str();
}

uint64_t fnv1a(const torch::Tensor& t) {
  const auto c = t.detach().contiguous().to(torch::kCPU);
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size_t(c.numel()) * c.element_size(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string dump() {
  std::ostringstream out;
  for (const auto* set : {&kStandard, &kHetero}) {
    for (auto head : {models::HeadType::kMlm, models::HeadType::kSequence}) {
      const ModelOptions o = options(head);
      out << "## head " << models::head_type_name(head) << "\n";
      for (size_t i = 0; i < set->size(); ++i) {
        out << "# layout " << (*set)[i] << "\n";
        for (const TensorSpec& t : tensor_layout(arch((*set)[i]), o)) {
          out << t.name << " [" << t.block << "] {" << t.compat << "}";
          for (const Axis& a : t.axes) out << " " << describe(a);
          out << "\n";
        }
      }
      for (size_t i = 0; i < set->size(); ++i)
        for (size_t j = 0; j < set->size(); ++j)
          for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
            const TransferPlan plan = plan_transfer(arch((*set)[i]), arch((*set)[j]), o, o, mode);
            out << "# plan " << i << " -> " << j << " " << mode_name(mode) << " " << plan.received << "/" << plan.total << "\n";
            for (const TensorTransfer& t : plan.tensors) out << fill_name(t.fill)[0] << t.received << " ";
            out << "\n";
          }
    }
    // Real transfers: each model to the next one and to itself, od and rp.
    const ModelOptions o = options(models::HeadType::kMlm);
    for (size_t i = 0; i < set->size(); ++i)
      for (size_t j : {i, (i + 1) % set->size()})
        for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
          torch::manual_seed(1);
          FlexModel src(arch((*set)[i]), o);
          torch::manual_seed(2);
          FlexModel dst(arch((*set)[j]), o);
          transfer_model(*src, *dst, {mode, 5});
          out << "# transfer " << i << " -> " << j << " " << mode_name(mode) << "\n";
          for (const auto& p : dst->named_parameters()) out << p.key() << " " << std::hex << fnv1a(p.value()) << std::dec << "\n";
        }
  }
  return out.str();
}

TEST(TransferGolden, LayoutsPlansAndTransferredTensorsAreUnchanged) {
  const std::string got = dump();
  if (const char* w = std::getenv("FLEXNAS_WRITE_GOLDEN"); w && std::strcmp(w, "1") == 0) {
    std::ofstream(kGolden) << got;
    GTEST_SKIP() << "wrote " << kGolden;
  }
  std::ifstream in(kGolden);
  ASSERT_TRUE(in) << "missing " << kGolden;
  std::stringstream want;
  want << in.rdbuf();
  // Line by line, so a failure names the first differing line.
  std::istringstream g(got), w(want.str());
  std::string gl, wl;
  for (int line = 1;; ++line) {
    const bool gm = bool(std::getline(g, gl)), wm = bool(std::getline(w, wl));
    if (!gm && !wm) break;
    ASSERT_EQ(gm ? gl : "<end>", wm ? wl : "<end>") << "line " << line << " of " << kGolden;
  }
}

}  // namespace
}  // namespace flexnas::transfer
