// LinearLayerShape: the layout of a linear layer's saved tensors, and the route (Gram or materialised)
// its ghost norm takes for sequence inputs, and when dense per-example rows are the cheaper route.
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

// Whether clipping a sequence layer through dense per-example rows (linear_per_example_gradients,
// then the dense clipping path) costs less than a ghost norm followed by the clipped GEMM. Forming
// the rows costs what the clipped GEMM costs (T d_in d_out multiply-adds per example), so the rows win
// when the ghost norm itself is dearer than the rows' memory traffic: the Gram route's T^2 (d_in +
// d_out + 1) multiply-adds (in double) against about two float passes over d_in d_out entries; the
// materialised route always (its products are the rows). Memory is the caller's limit to set.
inline bool per_example_rows_cheaper(const LinearLayerShape& shape) {
  if (shape.positions <= 1) return false;
  if (choose_ghost_norm_method(shape) == GhostNormMethod::kMaterialize) return true;
  const double t = static_cast<double>(shape.positions);
  const double gram = t * t * static_cast<double>(shape.in_features + shape.out_features + 1);
  return gram >= 2.0 * static_cast<double>(shape.in_features) * static_cast<double>(shape.out_features);
}

}  // namespace dpsgd
