#pragma once
// Model-dict features of an architecture: extra BOSHNAS surrogate inputs besides the library's
// structural embedding. The embedding places architectures by graph distance, which does not
// separate widths (NAS-Bench-BERT: a third of a 256-wide 4-layer architecture's 10 nearest
// neighbours are 128 wide, though those score ~3 GLUE points lower); the features state depth,
// widths and operation shares directly. Order-free summaries, so every design space and both
// model-dict formats have them.
#include <string>
#include <vector>

#include "design_space/library.h"

namespace flexnas::nas {

/// The names of the features arch_features() returns for this library, in order:
/// "layers", "hidden", "heads", "ffn_width", "ffn_depth", then "share:<type>" for every operation
/// type in the library and "share:<type>_<param>" for every operation, sorted.
std::vector<std::string> arch_feature_names(const Library& library);

/// One row per architecture [N][F], F = arch_feature_names(library).size(): layer count; means over
/// the layers of hidden width, head count, feed-forward width (mean of the stack) and feed-forward
/// depth; and the share of all heads that each operation type and each operation takes.
std::vector<std::vector<float>> arch_features(const Library& library);

}  // namespace flexnas::nas
