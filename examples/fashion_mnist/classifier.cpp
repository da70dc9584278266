// The Fashion-MNIST models on dpsgd::nn: on pixels or on scattering features; private and plain batch gradients.
#include "classifier.hpp"

#include <algorithm>

#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/pooling.hpp"
#include "dpsgd/nn/sequential.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"
#include "dpsgd/nn/tanh_cnn.hpp"

namespace fashion_mnist {

struct Classifier::Model : dpsgd::nn::Sequential<float> {};

namespace {

// The scattering features' shape for 28 x 28 images, J = 2, L = 8 (dpsgd::Scattering2D).
constexpr dpsgd::nn::ImageShape kScatteringShape{7, 7, 81};

// The CNN head on scattering features: conv 3x3 (32) - tanh - max pool 2 stride 2 - conv 3x3 (64) -
// tanh - linear 10; 47,626 parameters. Smaller than the pixel CNN's first layers because the
// scattering already did their work (edges at 8 angles and 2 scales, and their interactions).
void add_scattering_cnn(dpsgd::nn::Sequential<float>& model, std::uint64_t init_seed) {
  using namespace dpsgd::nn;
  auto& conv1 = model.add<Conv2d<float>>(kScatteringShape, 32, 3, 1, 1);
  model.add<Activation<float>>(ActivationKind::kTanh);
  auto& pool = model.add<Pool2d<float>>(conv1.output_shape(), 2, 2, PoolKind::kMax);
  auto& conv2 = model.add<Conv2d<float>>(pool.output_shape(), 64, 3, 1, 1);
  model.add<Activation<float>>(ActivationKind::kTanh);
  model.add<Linear<float>>(conv2.output_shape().size(), 10, true);
  model.finalize(init_seed);
}

}  // namespace

Classifier::Classifier(const std::string& kind, std::uint64_t init_seed) : model_(std::make_unique<Model>()) {
  using namespace dpsgd::nn;
  if (kind == "cnn") {
    add_tanh_cnn(*model_, ImageShape{28, 28, 1}, 10, init_seed);
    return;
  }
  if (kind == "scatter-cnn") {
    add_scattering_cnn(*model_, init_seed);
    return;
  }
  if (kind == "scatter-linear") {
    model_->add<Linear<float>>(kScatteringShape.size(), 10, true);
    model_->finalize(init_seed);
    return;
  }
  model_->add<Linear<float>>(784, 256, true);
  model_->add<Activation<float>>(ActivationKind::kTanh);
  model_->add<Linear<float>>(256, 10, true);
  model_->finalize(init_seed);
}

Classifier::~Classifier() = default;

std::int64_t Classifier::num_parameters() const { return model_->num_parameters(); }
std::span<float> Classifier::parameters() { return model_->parameters(); }

void Classifier::batch_gradient(const dpsgd::RowMajorMatrix<float>& inputs, const std::vector<std::int32_t>& labels,
                                std::span<const std::uint8_t> mask, const dpsgd::ClipConfig* clip,
                                std::span<float> gradient) {
  const auto loss = dpsgd::nn::softmax_cross_entropy<float>(model_->forward(inputs), labels, mask);
  model_->backward(loss.logit_grads);
  std::fill(gradient.begin(), gradient.end(), 0.0f);
  if (clip == nullptr) {
    model_->gradient_sum(mask, gradient);
  } else {
    model_->clipped_gradient_sum(mask, *clip, gradient);
  }
}

double Classifier::accuracy(const dpsgd::LabelledImages& data) {
  std::int64_t correct = 0;
  const std::int64_t n = data.images.rows();
  for (std::int64_t begin = 0; begin < n; begin += 1000) {
    const std::int64_t size = std::min<std::int64_t>(1000, n - begin);
    const std::vector<std::int32_t> predicted = model_->predict(data.images.middleRows(begin, size));
    for (std::int64_t i = 0; i < size; ++i) correct += predicted[i] == data.labels[static_cast<std::size_t>(begin + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

double Classifier::heldout_loss(const dpsgd::LabelledImages& data, std::int64_t count) {
  const std::int64_t n = std::min<std::int64_t>(count, data.images.rows());
  const std::vector<std::int32_t> labels(data.labels.begin(), data.labels.begin() + n);
  const std::vector<std::uint8_t> mask(static_cast<std::size_t>(n), 1);
  const dpsgd::RowMajorMatrix<float> logits = model_->forward(data.images.topRows(n));
  const auto loss = dpsgd::nn::softmax_cross_entropy<float>(logits, labels, mask);
  return loss.total_loss / static_cast<double>(std::max<std::int64_t>(1, loss.num_examples));
}

}  // namespace fashion_mnist
