#include "nas/cost_model.h"

#include "models/flex_model.h"

namespace flexnas::nas {

ModelCost estimate_cost(const Architecture& arch, const CostSettings& s) {
  models::ModelOptions o;
  o.vocab_size = s.vocab_size;
  o.max_positions = s.max_positions;
  const models::BaseModelCost c = models::base_model_cost(arch, o, s.sequence_length, s.include_pooler);
  return {c.parameters, c.flops_per_token};
}

}  // namespace flexnas::nas
