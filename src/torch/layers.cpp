// dpsgd::torch layers: forward passes that record, and the clipping math of dpsgd's clipping/ on their records.
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_embedding.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/clipping/layer_norm_gradients.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/torch/conv2d.hpp"
#include "dpsgd/torch/embedding.hpp"
#include "dpsgd/torch/layer_norm.hpp"
#include "dpsgd/torch/linear.hpp"
#include "input_only_backward.hpp"
#include "tensor_views.hpp"

namespace dpsgd::torch {

using views::as_rows;
using views::mutable_rows_of;
using views::rows_of;
using views::span_of;
using views::trainable;
using views::zeroed_grad;

void GhostClippable::record(const char* layer, bool training, const ::torch::Tensor& input, ::torch::Tensor& output) {
  if (!private_ || !training || !output.requires_grad()) return;
  DPSGD_CHECK_ARG(!input_.defined(),
                  layer << ": a second training forward pass before the optimiser's step (a layer used twice in one "
                           "pass, or a pass without a step); weight sharing is not supported in private mode");
  input_ = input.detach();
  output.register_hook([this](::torch::Tensor grad) { grad_output_ = grad.detach(); });
}

// Layers whose weight is frozen (DP-BiTFiT): the bias's per-example gradients sum_t dy_it, small
// enough to clip as dense rows, formed by the norm pass and reused by the write pass.
void GhostClippable::accumulate_bias_only_norms(const ::torch::Tensor& output_grad_rows, std::int64_t batch,
                                                SquaredNorms& squared_norms) const {
  rows_cache_ = linear_bias_per_example_gradients<float>(rows_of(output_grad_rows), batch);
  dpsgd::accumulate_squared_norms<float>(rows_cache_, squared_norms, 0);
}

void GhostClippable::write_bias_only_clipped(const ::torch::Tensor& output_grad_rows, std::int64_t batch,
                                             const Eigen::MatrixXd& factors, std::span<float> bias_grad) const {
  if (rows_cache_.rows() != batch)
    rows_cache_ = linear_bias_per_example_gradients<float>(rows_of(output_grad_rows), batch);
  accumulate_clipped_sum<float>(rows_cache_, factors, 0, bias_grad);
}

// --- Linear --------------------------------------------------------------------------------------

LinearImpl::LinearImpl(const ::torch::nn::LinearOptions& options_) : options(options_) { reset(); }

void LinearImpl::reset() {
  weight = register_parameter("weight", ::torch::empty({options.out_features(), options.in_features()}));
  bias = options.bias() ? register_parameter("bias", ::torch::empty(options.out_features()))
                        : register_parameter("bias", {}, /*requires_grad=*/false);
  reset_parameters();
}

// torch::nn::Linear's initialisation: Kaiming-uniform weight with a = sqrt(5), bias U(-1/sqrt(fan_in), +).
void LinearImpl::reset_parameters() {
  ::torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    ::torch::nn::init::uniform_(bias, -bound, bound);
  }
}

// A recorded pass skips autograd's weight gradient (detail::LinearInputOnlyBackward): the optimiser
// writes the clipped sums instead.
::torch::Tensor LinearImpl::forward(const ::torch::Tensor& input) {
  if (!(trainable(weight) || trainable(bias)) || !private_pass(is_training())) {
    return ::torch::nn::functional::linear(input, weight, bias);
  }
  ::torch::Tensor output = detail::LinearInputOnlyBackward::apply(input, weight);
  if (bias.defined()) output = output + bias;
  record("dpsgd::torch::Linear", is_training(), input, output);
  return output;
}

void LinearImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.out_features(), "dpsgd::torch::Linear", "output gradient");
  if (trainable(weight)) {
    const ::torch::Tensor a = as_rows(input_, batch, options.in_features(), "dpsgd::torch::Linear", "input");
    accumulate_linear_squared_norms<float>(rows_of(a), rows_of(g), batch, trainable(bias), squared_norms, 0);
  } else {
    accumulate_bias_only_norms(g, batch, squared_norms);
  }
}

void LinearImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.out_features(), "dpsgd::torch::Linear", "output gradient");
  std::span<float> bias_grad;
  if (trainable(bias)) bias_grad = span_of(zeroed_grad(bias));
  if (trainable(weight)) {
    const ::torch::Tensor a = as_rows(input_, batch, options.in_features(), "dpsgd::torch::Linear", "input");
    ::torch::Tensor& w = zeroed_grad(weight);
    accumulate_linear_clipped_gradient<float>(rows_of(a), rows_of(g), batch, factors, 0, mutable_rows_of(w), bias_grad);
  } else {
    write_bias_only_clipped(g, batch, factors, bias_grad);
  }
}

// --- Embedding -----------------------------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(const ::torch::nn::EmbeddingOptions& options_) : options(options_) {
  DPSGD_CHECK_ARG(!options.padding_idx().has_value() && !options.max_norm().has_value() && !options.sparse(),
                  "dpsgd::torch::Embedding: padding_idx, max_norm and sparse are not supported (padding positions "
                  "are masked by the batch instead)");
  reset();
}

void EmbeddingImpl::reset() {
  weight = register_parameter("weight", ::torch::empty({options.num_embeddings(), options.embedding_dim()}));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters() { ::torch::nn::init::normal_(weight); }

::torch::Tensor EmbeddingImpl::forward(const ::torch::Tensor& tokens) {
  ::torch::Tensor output = ::torch::embedding(weight, tokens);
  if (trainable(weight)) record("dpsgd::torch::Embedding", is_training(), tokens, output);
  return output;
}

namespace {

// The recorded tokens as int32 (the clipping code's type; vocabularies stay far below 2^31).
std::vector<std::int32_t> int32_tokens(const ::torch::Tensor& tokens, std::int64_t batch) {
  DPSGD_CHECK_ARG(tokens.defined(),
                  "dpsgd::torch::Embedding: no tokens were recorded (run a training forward and "
                  "backward pass in private mode before the optimiser's step)");
  DPSGD_CHECK_ARG(tokens.dim() >= 1 && tokens.size(0) == batch,
                  "dpsgd::torch::Embedding: the tokens' first dimension must be the batch capacity "
                      << batch << ", got " << tokens.sizes() << " (inputs are batch-first)");
  const ::torch::Tensor flat = tokens.reshape({-1}).to(::torch::kInt64).contiguous();
  const std::int64_t* data = flat.data_ptr<std::int64_t>();
  std::vector<std::int32_t> result(static_cast<std::size_t>(flat.numel()));
  for (std::size_t k = 0; k < result.size(); ++k) result[k] = static_cast<std::int32_t>(data[k]);
  return result;
}

}  // namespace

void EmbeddingImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight)) return;
  const std::vector<std::int32_t> tokens = int32_tokens(input_, batch);
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.embedding_dim(), "dpsgd::torch::Embedding", "output gradient");
  accumulate_embedding_squared_norms<float>(tokens, rows_of(g), batch, options.num_embeddings(), squared_norms, 0);
}

void EmbeddingImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight)) return;
  const std::vector<std::int32_t> tokens = int32_tokens(input_, batch);
  const ::torch::Tensor g =
      as_rows(grad_output_, batch, options.embedding_dim(), "dpsgd::torch::Embedding", "output gradient");
  ::torch::Tensor& w = zeroed_grad(weight);
  accumulate_embedding_clipped_gradient<float>(tokens, rows_of(g), batch, options.num_embeddings(), factors, 0,
                                               mutable_rows_of(w));
}

// --- LayerNorm -----------------------------------------------------------------------------------

LayerNormImpl::LayerNormImpl(const ::torch::nn::LayerNormOptions& options_) : options(options_) {
  DPSGD_CHECK_ARG(options.normalized_shape().size() == 1,
                  "dpsgd::torch::LayerNorm: normalized_shape must have one dimension (the last), got "
                      << options.normalized_shape().size());
  reset();
}

void LayerNormImpl::reset() {
  const std::int64_t d = options.normalized_shape()[0];
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", ::torch::empty({d}));
    bias = register_parameter("bias", ::torch::empty({d}));
  } else {
    weight = register_parameter("weight", {}, /*requires_grad=*/false);
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (!options.elementwise_affine()) return;
  ::torch::nn::init::ones_(weight);
  ::torch::nn::init::zeros_(bias);
}

// LibTorch's fused kernel computes the output and each position's mean and 1/std; the normalised
// input the clipping rule needs is formed from those (without autograd) only when the pass is recorded.
::torch::Tensor LayerNormImpl::forward(const ::torch::Tensor& input) {
  const auto [output_value, mean, rstd] =
      ::torch::native_layer_norm(input, options.normalized_shape(), weight, bias, options.eps());
  ::torch::Tensor output = output_value;
  if ((trainable(weight) || trainable(bias)) && would_record(is_training(), output)) {
    const ::torch::NoGradGuard no_grad;
    record("dpsgd::torch::LayerNorm", is_training(), (input - mean) * rstd, output);
  }
  return output;
}

namespace {

// [gamma part | beta part] per example, each column zeroed where that parameter is frozen.
RowMajorMatrix<float> layer_norm_rows(const ::torch::Tensor& normalized, const ::torch::Tensor& grad_output,
                                      std::int64_t d, std::int64_t batch, bool gamma, bool beta) {
  const ::torch::Tensor x = as_rows(normalized, batch, d, "dpsgd::torch::LayerNorm", "normalised input");
  const ::torch::Tensor g = as_rows(grad_output, batch, d, "dpsgd::torch::LayerNorm", "output gradient");
  RowMajorMatrix<float> rows = layer_norm_per_example_gradients<float>(rows_of(x), rows_of(g), batch, true);
  if (!gamma) rows.leftCols(d).setZero();
  if (!beta) rows.rightCols(d).setZero();
  return rows;
}

}  // namespace

void LayerNormImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight) && !trainable(bias)) return;
  const std::int64_t d = options.normalized_shape()[0];
  rows_cache_ = layer_norm_rows(input_, grad_output_, d, batch, trainable(weight), trainable(bias));
  dpsgd::accumulate_squared_norms<float>(rows_cache_, squared_norms, 0);
}

void LayerNormImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight) && !trainable(bias)) return;
  const std::int64_t d = options.normalized_shape()[0];
  if (rows_cache_.rows() != batch) {
    rows_cache_ = layer_norm_rows(input_, grad_output_, d, batch, trainable(weight), trainable(bias));
  }
  std::vector<float> sum(static_cast<std::size_t>(2 * d), 0.0f);
  accumulate_clipped_sum<float>(rows_cache_, factors, 0, sum);
  if (trainable(weight)) std::copy(sum.begin(), sum.begin() + d, zeroed_grad(weight).data_ptr<float>());
  if (trainable(bias)) std::copy(sum.begin() + d, sum.end(), zeroed_grad(bias).data_ptr<float>());
}

// --- Conv2d --------------------------------------------------------------------------------------

namespace {

constexpr const char* kConv = "dpsgd::torch::Conv2d";

// options.padding as numbers: "valid" is 0, "same" (stride 1) is d (k - 1) / 2 on each side where that is
// a whole number (an even d (k - 1) would need asymmetric padding, which im2col here does not do).
::torch::ExpandingArray<2> resolved_padding(const ::torch::nn::Conv2dOptions& options) {
  // variant index: 0 numbers, 1 kValid, 2 kSame (c10::variant in LibTorch 1.x, std::variant in 2.x: get
  // is found by argument-dependent lookup).
  const auto& padding = options.padding();
  if (padding.index() == 0) return get<0>(padding);
  if (padding.index() == 1) return ::torch::ExpandingArray<2>(std::int64_t{0});
  ::torch::ExpandingArray<2> result(std::int64_t{0});
  for (std::size_t k = 0; k < 2; ++k) {
    const std::int64_t span = options.dilation()->at(k) * (options.kernel_size()->at(k) - 1);
    DPSGD_CHECK_ARG(span % 2 == 0 && options.stride()->at(k) == 1,
                    kConv << ": padding \"same\" needs stride 1 and an odd dilated kernel, got kernel "
                          << options.kernel_size() << ", dilation " << options.dilation() << ", stride "
                          << options.stride());
    result->at(k) = span / 2;
  }
  return result;
}

}  // namespace

Conv2dImpl::Conv2dImpl(const ::torch::nn::Conv2dOptions& options_) : options(options_) {
  DPSGD_CHECK_ARG(options.groups() == 1, kConv << ": groups must be 1, got " << options.groups());
  DPSGD_CHECK_ARG(options.padding_mode().index() == 0,
                  kConv << ": padding_mode must be zeros (reflect, replicate and circular are not supported)");
  DPSGD_CHECK_ARG(options.in_channels() >= 1 && options.out_channels() >= 1,
                  kConv << ": in_channels and out_channels must be >= 1, got " << options.in_channels() << " and "
                        << options.out_channels());
  padding_ = resolved_padding(options);
  reset();
}

void Conv2dImpl::reset() {
  const auto& k = options.kernel_size();
  weight =
      register_parameter("weight", ::torch::empty({options.out_channels(), options.in_channels(), k->at(0), k->at(1)}));
  bias = options.bias() ? register_parameter("bias", ::torch::empty(options.out_channels()))
                        : register_parameter("bias", {}, /*requires_grad=*/false);
  reset_parameters();
}

// torch::nn::Conv2d's initialisation: Kaiming-uniform weight with a = sqrt(5), bias U(-1/sqrt(fan_in), +)
// with fan_in = in_channels kh kw.
void Conv2dImpl::reset_parameters() {
  ::torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight[0].numel()));
    ::torch::nn::init::uniform_(bias, -bound, bound);
  }
}

// A recorded pass skips autograd's weight gradient (detail::Conv2dInputOnlyBackward), as Linear does.
::torch::Tensor Conv2dImpl::forward(const ::torch::Tensor& input) {
  if (!(trainable(weight) || trainable(bias)) || !private_pass(is_training())) {
    return ::torch::conv2d(input, weight, bias, *options.stride(), *padding_, *options.dilation(), /*groups=*/1);
  }
  const auto as_vector = [](const ::torch::ExpandingArray<2>& a) {
    return std::vector<std::int64_t>(a->begin(), a->end());
  };
  ::torch::Tensor output = detail::Conv2dInputOnlyBackward::apply(input, weight, as_vector(options.stride()),
                                                                  as_vector(padding_), as_vector(options.dilation()));
  if (bias.defined()) output = output + bias.view({1, -1, 1, 1});
  record(kConv, is_training(), input, output);
  return output;
}

const ::torch::Tensor& Conv2dImpl::patches(std::int64_t batch) const {
  DPSGD_CHECK_ARG(input_.defined(), kConv << ": no input was recorded (run a training forward and backward pass "
                                             "in private mode before the optimiser's step)");
  DPSGD_CHECK_ARG(input_.dim() == 4 && input_.size(0) == batch,
                  kConv << ": the input must be [batch capacity " << batch << ", C, H, W], got " << input_.sizes());
  if (tensor_cache_.defined()) return tensor_cache_;  // this record's, unfolded by the norm pass
  // [B, C kh kw, positions] -> [B, positions, C kh kw]: the column order (channel, row, column) is the
  // weight's, so weight.view(out, -1) is the Linear layer's matrix.
  const ::torch::Tensor unfolded =
      ::torch::nn::functional::unfold(input_, ::torch::nn::functional::UnfoldFuncOptions(options.kernel_size())
                                                  .dilation(options.dilation())
                                                  .padding(padding_)
                                                  .stride(options.stride()));
  tensor_cache_ = as_rows(unfolded.transpose(1, 2), batch, weight[0].numel(), kConv, "unfolded input");
  return tensor_cache_;
}

// [B, out, H, W] -> rows [B * positions, out] (as_rows reports a missing record).
::torch::Tensor Conv2dImpl::output_gradient_rows(std::int64_t batch) const {
  if (!grad_output_.defined()) return as_rows(grad_output_, batch, options.out_channels(), kConv, "output gradient");
  DPSGD_CHECK_ARG(grad_output_.dim() == 4,
                  kConv << ": the output gradient must be [B, out, H, W], got " << grad_output_.sizes());
  return as_rows(grad_output_.flatten(2).transpose(1, 2), batch, options.out_channels(), kConv, "output gradient");
}

void Conv2dImpl::accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g = output_gradient_rows(batch);
  if (trainable(weight)) {
    accumulate_linear_squared_norms<float>(rows_of(patches(batch)), rows_of(g), batch, trainable(bias), squared_norms,
                                           0);
  } else {
    accumulate_bias_only_norms(g, batch, squared_norms);
  }
}

void Conv2dImpl::write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) {
  if (!trainable(weight) && !trainable(bias)) return;
  const ::torch::Tensor g = output_gradient_rows(batch);
  std::span<float> bias_grad;
  if (trainable(bias)) bias_grad = span_of(zeroed_grad(bias));
  if (trainable(weight)) {
    ::torch::Tensor& w = zeroed_grad(weight);
    ::torch::Tensor w_rows = w.view({options.out_channels(), -1});
    accumulate_linear_clipped_gradient<float>(rows_of(patches(batch)), rows_of(g), batch, factors, 0,
                                              mutable_rows_of(w_rows), bias_grad);
  } else {
    write_bias_only_clipped(g, batch, factors, bias_grad);
  }
}

}  // namespace dpsgd::torch
