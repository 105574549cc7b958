#include "datasets/finetune_data.h"

#include <torch/torch.h>

#include <algorithm>

#include "datasets/splits.h"
#include "design_space/error.h"
#include "design_space/log.h"

namespace flexnas::datasets {

const EnumNames<Truncation>& truncation_names() {
  static const EnumNames<Truncation> names{{"head", Truncation::kHead}, {"head+tail", Truncation::kHeadTail}};
  return names;
}

const char* truncation_name(Truncation t) { return enum_name(truncation_names(), t).c_str(); }

TaskDataset::TaskDataset(const TaskInfo& task, const std::vector<Example>& examples, const Tokenizer& tokenizer,
                         const std::string& cache_name, FinetuneOptions o)
    : task_(task), options_(o) {
  if (o.max_length < 4) throw ConfigError("error: --max-length: " + std::to_string(o.max_length) + "; must be at least 4");
  if (o.batch_size < 1) throw ConfigError("error: --batch-size: " + std::to_string(o.batch_size) + "; must be positive");
  if (!(o.head_fraction >= 0 && o.head_fraction <= 1))
    throw ConfigError("error: --head-fraction: " + std::to_string(o.head_fraction) + "; must be in [0, 1]");
  const auto L = static_cast<size_t>(o.max_length);
  if (task.kind == TaskKind::kTokenClassification) {
    std::vector<std::vector<std::string>> sentences;
    for (const auto& ex : examples) sentences.push_back(ex.words);
    const auto cache = tokenizer.encode_words(cache_name, sentences);
    FLEXNAS_CHECK(cache->num_documents() == examples.size(), "token cache has ", cache->num_documents(),
                  " sentences for ", examples.size(), " examples");
    for (size_t e = 0; e < examples.size(); ++e) {
      std::vector<int32_t> ids{SpecialIds::kCls};
      std::vector<int64_t> labels{-100};
      bool cut = false;
      for (uint64_t w = cache->document_begin(e); w < cache->document_end(e); ++w) {
        const TokenSpan piece = cache->sentence(w);
        const size_t word = w - cache->document_begin(e);
        bool first = true;
        for (int32_t id : piece) {
          if (ids.size() + 1 >= L) {
            cut = true;
            break;
          }
          ids.push_back(id);
          labels.push_back(first ? examples[e].word_labels.at(word) : -100);
          first = false;
        }
        if (cut) break;
      }
      ids.push_back(SpecialIds::kSep);
      labels.push_back(-100);
      truncated_ += cut;
      first_sep_.push_back(static_cast<int32_t>(ids.size() - 1));
      ids_.push_back(std::move(ids));
      token_labels_.push_back(std::move(labels));
    }
  } else {
    std::vector<std::vector<std::string>> segments;
    for (const auto& ex : examples) {
      if (static_cast<int64_t>(ex.segments.size()) != task.num_segments)
        throw ConfigError("error: task " + task.name + ": an example has " + std::to_string(ex.segments.size()) +
                          " text segments, expected " + std::to_string(task.num_segments));
      segments.push_back(ex.segments);
    }
    const auto cache = tokenizer.encode_segments(cache_name, segments);
    FLEXNAS_CHECK(cache->num_documents() == examples.size(), "token cache has ", cache->num_documents(),
                  " records for ", examples.size(), " examples");
    for (size_t e = 0; e < examples.size(); ++e) {
      const uint64_t s0 = cache->document_begin(e);
      TokenSpan a = cache->sentence(s0);
      TokenSpan b = task.num_segments == 2 ? cache->sentence(s0 + 1) : TokenSpan{};
      const size_t budget = L - (task.num_segments == 2 ? 3 : 2);
      size_t na = a.size, nb = b.size;
      const bool cut = na + nb > budget;
      while (na + nb > budget) (na >= nb ? na : nb)--;  // longest first
      std::vector<int32_t> ids{SpecialIds::kCls};
      if (cut && task.num_segments == 1 && o.truncation == Truncation::kHeadTail) {
        const size_t head = std::min(na, size_t(std::llround(o.head_fraction * double(na))));
        ids.insert(ids.end(), a.data, a.data + head);
        ids.insert(ids.end(), a.data + (a.size - (na - head)), a.data + a.size);
      } else {
        ids.insert(ids.end(), a.data, a.data + na);
      }
      ids.push_back(SpecialIds::kSep);
      first_sep_.push_back(static_cast<int32_t>(ids.size() - 1));
      if (task.num_segments == 2) {
        ids.insert(ids.end(), b.data, b.data + nb);
        ids.push_back(SpecialIds::kSep);
      }
      truncated_ += cut;
      ids_.push_back(std::move(ids));
      labels_.push_back(examples[e].label);
      targets_.push_back(static_cast<float>(examples[e].target));
    }
  }
  if (truncated_ > 0)
    LOG_DEBUG(cache_name, ": ", truncated_, " of ", ids_.size(), " examples truncated to ", o.max_length, " tokens");
}

std::vector<int64_t> TaskDataset::label_counts() const {
  if (task_.kind == TaskKind::kRegression) return {};
  std::vector<int64_t> counts(size_t(task_.num_labels), 0);
  if (task_.kind == TaskKind::kTokenClassification) {
    for (const auto& labels : token_labels_)
      for (int64_t l : labels)
        if (l >= 0 && l < task_.num_labels) ++counts[size_t(l)];
  } else {
    for (int64_t l : labels_)
      if (l >= 0 && l < task_.num_labels) ++counts[size_t(l)];
  }
  return counts;
}

TaskBatch TaskDataset::batch(int64_t epoch, int64_t i) const {
  FLEXNAS_CHECK(i >= 0 && i < num_batches(), "batch ", i, " of ", num_batches());
  const int64_t first = i * options_.batch_size;
  const int64_t B = std::min(options_.batch_size, size() - first);
  TaskBatch batch;
  std::vector<int64_t> order;
  if (epoch >= 0) order = permutation(size(), mix_seed({options_.seed, static_cast<uint64_t>(epoch), 0xf17e}));
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t e = epoch >= 0 ? order[static_cast<size_t>(first + b)] : first + b;
    batch.example_ids.push_back(e);
    T = std::max<int64_t>(T, static_cast<int64_t>(ids_[static_cast<size_t>(e)].size()));
  }
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  batch.input_ids = torch::full({B, T}, SpecialIds::kPad, i64);
  batch.attention_mask = torch::zeros({B, T}, i64);
  batch.token_type_ids = torch::zeros({B, T}, i64);
  auto* ids = batch.input_ids.data_ptr<int64_t>();
  auto* am = batch.attention_mask.data_ptr<int64_t>();
  auto* tt = batch.token_type_ids.data_ptr<int64_t>();
  const bool token = task_.kind == TaskKind::kTokenClassification;
  if (token) batch.labels = torch::full({B, T}, -100, i64);
  else if (task_.kind == TaskKind::kRegression) batch.labels = torch::empty({B}, torch::kFloat32);
  else batch.labels = torch::empty({B}, i64);
  for (int64_t b = 0; b < B; ++b) {
    const auto e = static_cast<size_t>(batch.example_ids[static_cast<size_t>(b)]);
    const auto& seq = ids_[e];
    for (size_t t = 0; t < seq.size(); ++t) {
      ids[b * T + static_cast<int64_t>(t)] = seq[t];
      am[b * T + static_cast<int64_t>(t)] = 1;
      tt[b * T + static_cast<int64_t>(t)] = static_cast<int64_t>(t) > first_sep_[e] ? 1 : 0;
    }
    if (token) {
      auto* lb = batch.labels.data_ptr<int64_t>();
      for (size_t t = 0; t < seq.size(); ++t) lb[b * T + static_cast<int64_t>(t)] = token_labels_[e][t];
    } else if (task_.kind == TaskKind::kRegression) {
      batch.labels.data_ptr<float>()[b] = targets_[e];
    } else {
      batch.labels.data_ptr<int64_t>()[b] = labels_[e];
    }
  }
  return batch;
}

void accumulate_predictions(Predictions& p, const TaskInfo& task, const torch::Tensor& logits, const TaskBatch& batch) {
  const torch::Tensor out = logits.detach().to(torch::kCPU);
  const int64_t B = batch.labels.size(0);
  switch (task.kind) {
    case TaskKind::kRegression: {
      const torch::Tensor v = out.reshape({B}).to(torch::kFloat64).contiguous();
      const torch::Tensor g = batch.labels.to(torch::kFloat64).contiguous();
      p.predicted_values.insert(p.predicted_values.end(), v.data_ptr<double>(), v.data_ptr<double>() + B);
      p.gold_values.insert(p.gold_values.end(), g.data_ptr<double>(), g.data_ptr<double>() + B);
      return;
    }
    case TaskKind::kSequenceClassification: {
      FLEXNAS_CHECK(out.dim() == 2 && out.size(0) == B, "logits ", out.sizes(), " for a batch of ", B);
      const torch::Tensor a = out.argmax(1).to(torch::kInt64).contiguous();
      const torch::Tensor g = batch.labels.contiguous();
      p.predicted.insert(p.predicted.end(), a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + B);
      p.gold.insert(p.gold.end(), g.data_ptr<int64_t>(), g.data_ptr<int64_t>() + B);
      return;
    }
    case TaskKind::kTokenClassification: {
      FLEXNAS_CHECK(out.dim() == 3 && out.size(0) == B && out.size(1) == batch.labels.size(1), "logits ", out.sizes(),
                    " for labels ", batch.labels.sizes());
      const torch::Tensor a = out.argmax(2).to(torch::kInt64).contiguous();
      const torch::Tensor g = batch.labels.contiguous();
      const int64_t n = g.numel();
      for (int64_t i = 0; i < n; ++i) {
        if (g.data_ptr<int64_t>()[i] == -100) continue;
        p.predicted.push_back(a.data_ptr<int64_t>()[i]);
        p.gold.push_back(g.data_ptr<int64_t>()[i]);
      }
      return;
    }
  }
}

}  // namespace flexnas::datasets
