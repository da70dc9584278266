// GhostClippable: what a dpsgd::torch layer records in a forward and backward pass, and gives the optimiser.
#pragma once

#include <cstdint>
#include <span>

#include <torch/torch.h>
#include <Eigen/Core>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::torch {

// A layer that records, during a training forward pass in private mode, what its per-example
// gradient norms and clipped gradient sums need (its input, and through a hook its output's
// gradient) and computes them with dpsgd's clipping code: nothing of the size of its parameters is
// materialised per example where a ghost route exists. Only trainable parameters (requires_grad)
// take part: a frozen one gets neither clipping nor noise.
class GhostClippable {
 public:
  virtual ~GhostClippable() = default;

  // squared_norms(i, 0) += squared norm of example i's gradient of this layer's trainable parameters.
  // `batch` is the first dimension of the layer's input (the batch slots). Throws InvalidArgument if
  // the layer has trainable parameters but no complete record, or a record of another batch size.
  virtual void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const = 0;
  // Sets grad() of each trainable parameter to sum_i factors(i, 0) g_i (allocating it if needed).
  virtual void write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) = 0;

  // Whether the last training passes left a complete record (input and output gradient).
  bool recorded() const { return input_.defined() && grad_output_.defined(); }
  // Drops the record (the optimiser does after each step, so it is held for one step only).
  void clear_record() {
    input_.reset();
    grad_output_.reset();
    rows_cache_.resize(0, 0);
    tensor_cache_.reset();
  }
  // Private mode: training forward passes record (off by default, so plain LibTorch training costs
  // nothing extra; PrivateOptimizer turns it on).
  void set_private(bool on) {
    private_ = on;
    if (!on) clear_record();
  }
  bool is_private() const { return private_; }

 protected:
  // Called by forward() with what the layer's rule needs (its input, or its normalised input) and its
  // output: keeps the first and hooks the second's gradient, when in private mode, training, and the
  // output takes part in autograd. A second record before clear_record() would silently replace the
  // first (a layer used twice in one pass, whose norm would miss a use): refused, naming `layer`.
  void record(const char* layer, bool training, const ::torch::Tensor& input, ::torch::Tensor& output);
  // A layer whose weight is frozen clips its bias's per-example gradients (rows of dY summed per
  // example, `output_grad_rows` [B T, out]) as dense rows, cached in rows_cache_ between the passes.
  void accumulate_bias_only_norms(const ::torch::Tensor& output_grad_rows, std::int64_t batch,
                                  SquaredNorms& squared_norms) const;
  void write_bias_only_clipped(const ::torch::Tensor& output_grad_rows, std::int64_t batch,
                               const Eigen::MatrixXd& factors, std::span<float> bias_grad) const;
  // Whether a forward pass in this mode is recorded (private, training, autograd on): the pass whose
  // parameter gradients the optimiser will write, so autograd need not form them.
  bool private_pass(bool training) const { return private_ && training && ::torch::GradMode::is_enabled(); }
  // Whether record() would keep anything for this pass (lets a layer skip preparing what it records).
  bool would_record(bool training, const ::torch::Tensor& output) const {
    return private_ && training && output.requires_grad();
  }

  ::torch::Tensor input_;        // what the rule needs from the forward pass (detached)
  ::torch::Tensor grad_output_;  // the output's gradient from the backward pass (detached)
  // What the norm pass derived from the record and the write pass needs again (per-example rows of a
  // LayerNorm or of a bias-only Linear, a convolution's unfolded input): computed once per step,
  // dropped with the record.
  mutable RowMajorMatrix<float> rows_cache_;
  mutable ::torch::Tensor tensor_cache_;

 private:
  bool private_ = false;
};

}  // namespace dpsgd::torch
