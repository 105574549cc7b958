#include "launch/campaign/leaderboard.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>

namespace flexnas::launch {

std::string summarize_architecture(const Architecture& arch) {
  std::ostringstream out;
  out << "L" << arch.num_layers();
  std::string last;
  int repeat = 0, shared = 0;  // layers in the current run of equal ones; of them, running with an earlier layer's parameters
  auto flush = [&] {
    if (repeat == 0) return;
    out << " | " << last;
    if (repeat > 1) out << " x" << repeat;
    if (shared > 0) out << " (" << shared << " shared)";  // Funnel block parameter sharing
  };
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const LayerSpec& l = arch.layers[i];
    std::ostringstream s;
    // Funnel pooling before this layer: "pool2 " in front, so a pooled stack reads apart.
    if (arch.pool.active() && arch.pool.stride[i] > 1) s << "pool" << arch.pool.stride[i] << " ";
    s << "h" << l.hidden << " ";
    if (l.head_list.empty()) {
      s << l.op << "-" << l.param << " n" << l.heads;
    } else {
      std::map<std::string, int> counts;
      for (const HeadSpec& h : l.head_list) counts[h.to_string()]++;
      bool first = true;
      for (const auto& [name, n] : counts) {
        s << (first ? "" : "+") << n << "*" << name;
        first = false;
      }
    }
    s << " f";
    for (size_t k = 0; k < l.ffn.size(); ++k) s << (k ? "," : "") << l.ffn[k];
    if (s.str() == last) {
      ++repeat;
    } else {
      flush();
      last = s.str();
      repeat = 1;
      shared = 0;
    }
    if (arch.owner(i) != i) ++shared;
  }
  flush();
  return out.str();
}

std::string leaderboard(const std::vector<TrialRow>& trials, const Library& library, int64_t level, int n,
                        const std::map<std::string, ProfileRow>* profiles) {
  const bool measured = profiles && !profiles->empty();
  std::vector<const TrialRow*> done;
  for (const TrialRow& t : trials)
    if (t.status == trial_status::kCompleted && t.score) done.push_back(&t);
  std::stable_sort(done.begin(), done.end(), [](const TrialRow* a, const TrialRow* b) { return *a->score > *b->score; });
  std::ostringstream out;
  out << std::left << std::setw(5) << "rank" << std::setw(6) << "level" << std::setw(7) << "trial" << std::setw(12)
      << "score" << std::setw(12)
      << "parameters";
  if (measured) out << std::setw(12) << "latency ms" << std::setw(12) << "memory MiB";
  out << std::setw(14) << "hash" << "model dict\n";
  for (int i = 0; i < int(done.size()) && i < n; ++i) {
    const TrialRow& t = *done[size_t(i)];
    std::ostringstream score;
    score << std::setprecision(6) << *t.value;
    out << std::left << std::setw(5) << (i + 1) << std::setw(6) << trial_level(t, level) << std::setw(7) << t.id
        << std::setw(12) << score.str() << std::setw(12)
        << t.parameters;
    if (measured) {
      auto it = profiles->find(t.hash);
      std::ostringstream latency, memory;
      if (it != profiles->end() && it->second.error.empty()) {
        latency << std::fixed << std::setprecision(2) << it->second.latency_ms;
        memory << std::fixed << std::setprecision(1) << it->second.memory_mb;
      } else {
        latency << "-";
        memory << "-";
      }
      out << std::setw(12) << latency.str() << std::setw(12) << memory.str();
    }
    out << std::setw(14) << t.hash.substr(0, 12)
        << (t.index >= 0 && size_t(t.index) < library.size() ? summarize_architecture(library.archs[size_t(t.index)])
                                                               : std::string("?"))
        << "\n";
  }
  if (done.empty()) out << "(no completed trials)\n";
  return out.str();
}

}  // namespace flexnas::launch
