// Views between LibTorch tensors and dpsgd's clipping types, shared by the dpsgd::torch translation units.
#pragma once

#include <cstdint>
#include <span>

#include <torch/torch.h>
#include <Eigen/Core>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::torch::views {

using FloatRows = Eigen::Map<const RowMajorMatrix<float>>;
using MutableFloatRows = Eigen::Map<RowMajorMatrix<float>>;

// A [rows, cols] float32 CPU view of `t` (contiguous: a copy only when t is not). Its first dimension
// must be the batch: the rows of example i are then contiguous (a sequence-first [T, B, d] layout
// would mix examples, and is refused).
inline ::torch::Tensor as_rows(const ::torch::Tensor& t, std::int64_t batch, std::int64_t cols, const char* layer,
                               const char* what) {
  DPSGD_CHECK_ARG(t.defined(), layer << ": no " << what << " was recorded (run a training forward and backward pass "
                                     << "in private mode before the optimiser's step)");
  DPSGD_CHECK_ARG(t.dim() >= 1 && t.size(0) == batch, layer << ": the " << what
                                                            << "'s first dimension must be the batch capacity " << batch
                                                            << ", got " << t.sizes() << " (inputs are batch-first)");
  DPSGD_CHECK_ARG(t.scalar_type() == ::torch::kFloat32 && t.device().is_cpu(),
                  layer << ": " << what << " must be a float32 CPU tensor, got " << t.toString()
                        << " (CUDA tensors are not supported yet)");
  return t.reshape({-1, cols}).contiguous();
}

// A contiguous 2-D float tensor as Eigen rows (no copy).
inline FloatRows rows_of(const ::torch::Tensor& t) { return {t.data_ptr<float>(), t.size(0), t.size(1)}; }
inline MutableFloatRows mutable_rows_of(::torch::Tensor& t) { return {t.data_ptr<float>(), t.size(0), t.size(1)}; }

// A contiguous float tensor's elements (no copy).
inline std::span<float> span_of(const ::torch::Tensor& t) {
  return {t.data_ptr<float>(), static_cast<std::size_t>(t.numel())};
}

// p.grad(), zeroed, contiguous and of p's shape.
inline ::torch::Tensor& zeroed_grad(::torch::Tensor& p) {
  ::torch::Tensor& grad = p.mutable_grad();
  if (!grad.defined() || !grad.is_contiguous() || grad.sizes() != p.sizes()) {
    grad = ::torch::zeros_like(p, ::torch::MemoryFormat::Contiguous);
  } else {
    grad.zero_();
  }
  return grad;
}

inline bool trainable(const ::torch::Tensor& p) { return p.defined() && p.requires_grad(); }

}  // namespace dpsgd::torch::views
