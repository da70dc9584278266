// LinearLayerShape: the layout of a linear layer's saved tensors, and the route (Gram or materialised)
// its ghost norm takes for sequence inputs.
#pragma once

#include <cstdint>

namespace dpsgd {

// How the per-example weight-gradient norm of a layer with sequence inputs (T > 1) is computed.
enum class GhostNormMethod : int {
  kAuto = 0,         // whichever of the two below costs fewer flops for this layer's shape
  kGram = 1,         // ||G_i^T A_i||_F^2 = <A_i A_i^T, G_i G_i^T>: O(T^2 (d_in + d_out)) per example
  kMaterialize = 2,  // form G_i^T A_i (d_out x d_in) per example: O(T d_in d_out)
};

// The layout of one linear layer's saved tensors: activations A are (batch * positions) x in_features,
// output gradients dY are (batch * positions) x out_features, both row-major, example i owning rows
// [i * positions, (i + 1) * positions). positions = 1 for plain (non-sequence) inputs.
struct LinearLayerShape {
  std::int64_t batch = 0;
  std::int64_t positions = 1;
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
};

// Chooses the cheaper method for sequence inputs. Flop counts per example: the Gram route
// forms two T x T Gram matrices, T^2 (d_in + d_out) multiply-adds, plus T^2 for their inner
// product; materialising costs T d_in d_out. For T = 1 the norm factorises, so both collapse
// to ||a||^2 ||dy||^2 and kGram is returned.
inline GhostNormMethod choose_ghost_norm_method(const LinearLayerShape& shape) {
  const double t = static_cast<double>(shape.positions);
  const double gram = t * t * static_cast<double>(shape.in_features + shape.out_features + 1);
  const double materialize = t * static_cast<double>(shape.in_features) * static_cast<double>(shape.out_features);
  return (shape.positions == 1 || gram <= materialize) ? GhostNormMethod::kGram : GhostNormMethod::kMaterialize;
}

}  // namespace dpsgd
