#pragma once
// The model registry as design_space/'s operation catalogue (design_space/op_catalog.h): operation
// types and parameter checks come from the OpDefinitions, costs from base_model_cost. Pass it to
// load_design_space; it is the only catalogue (there is no list of op types in design_space/).
#include "design_space/op_catalog.h"

namespace flexnas::models {

/// The registry's catalogue (a function-local static; every op file registers before main).
const OpCatalog& op_catalog();

}  // namespace flexnas::models
