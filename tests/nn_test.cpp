// Tests of the reference layers: finite-difference gradients and ghost clipping against brute force.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/mlp.hpp"
#include "dpsgd/nn/pooling.hpp"
#include "dpsgd/nn/softmax_cross_entropy.hpp"

namespace dpsgd::nn {
namespace {

struct Problem {
  RowMajorMatrix<double> x;
  std::vector<std::int32_t> labels;
  std::vector<std::uint8_t> mask;
};

Problem random_problem(std::uint64_t seed, std::int64_t batch, std::int64_t inputs, std::int32_t classes) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Problem p{RowMajorMatrix<double>(batch, inputs), {}, {}};
  for (Eigen::Index i = 0; i < p.x.size(); ++i) p.x.data()[i] = normal(rng);
  for (std::int64_t i = 0; i < batch; ++i) {
    p.labels.push_back(static_cast<std::int32_t>(rng() % classes));
    p.mask.push_back(i % 4 != 3);  // every fourth slot is padding
  }
  return p;
}

double total_loss(Sequential<double>& model, const Problem& p) {
  return softmax_cross_entropy<double>(model.forward(p.x), p.labels, p.mask).total_loss;
}

std::vector<double> analytic_gradient(Sequential<double>& model, const Problem& p) {
  const auto loss = softmax_cross_entropy<double>(model.forward(p.x), p.labels, p.mask);
  model.backward(loss.logit_grads);
  std::vector<double> grad(static_cast<std::size_t>(model.num_parameters()), 0.0);
  model.gradient_sum(p.mask, grad);
  return grad;
}

// Every parameter's analytic gradient against the central difference of the summed loss.
void expect_gradient_matches_central_differences(Sequential<double>& model, const Problem& p) {
  const std::vector<double> grad = analytic_gradient(model, p);
  auto params = model.parameters();
  const double h = 1e-6;
  for (std::size_t j = 0; j < params.size(); ++j) {
    const double saved = params[j];
    params[j] = saved + h;
    const double up = total_loss(model, p);
    params[j] = saved - h;
    const double down = total_loss(model, p);
    params[j] = saved;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(grad[j], numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << "parameter " << j;
  }
}

// Sequential::backward skips what no gradient needs: the input gradient of the first layer with
// parameters, and the layers before it. A single-layer model and one that starts with a
// parameter-free layer must still get every gradient right.
TEST(Sequential, GradientsWhenTheFirstParameterisedLayerIsLastOrNotFirst) {
  const Problem p = random_problem(12, 8, 5, 3);
  Sequential<double> single;
  single.add<Linear<double>>(5, 3, true);
  single.finalize(43);
  expect_gradient_matches_central_differences(single, p);
  Sequential<double> leading_activation;
  leading_activation.add<Activation<double>>(ActivationKind::kTanh);
  leading_activation.add<Linear<double>>(5, 4, true);
  leading_activation.add<Activation<double>>(ActivationKind::kTanh);
  leading_activation.add<Linear<double>>(4, 3, true);
  leading_activation.finalize(44);
  expect_gradient_matches_central_differences(leading_activation, p);
}

class MlpFiniteDifference : public ::testing::TestWithParam<ActivationKind> {};

TEST_P(MlpFiniteDifference, GradientMatchesCentralDifferences) {
  const Problem p = random_problem(11, 8, 5, 3);
  Mlp<double> model({5, 7, 6, 3}, GetParam(), 42);
  expect_gradient_matches_central_differences(model, p);
}

INSTANTIATE_TEST_SUITE_P(Activations, MlpFiniteDifference,
                         ::testing::Values(ActivationKind::kRelu, ActivationKind::kTanh), [](const auto& param_info) {
                           return param_info.param == ActivationKind::kRelu ? "Relu" : "Tanh";
                         });

// Per-example gradients by running each example alone: the brute force ghost clipping avoids.
RowMajorMatrix<double> materialised_per_example_gradients(Sequential<double>& model, const Problem& p) {
  RowMajorMatrix<double> rows = RowMajorMatrix<double>::Zero(p.x.rows(), model.num_parameters());
  for (Eigen::Index i = 0; i < p.x.rows(); ++i) {
    Problem one{p.x.row(i), {p.labels[i]}, {1}};
    const std::vector<double> g = analytic_gradient(model, one);
    rows.row(i) = Eigen::Map<const Eigen::RowVectorXd>(g.data(), static_cast<Eigen::Index>(g.size()));
  }
  return rows;
}

class MlpGhostClipping : public ::testing::TestWithParam<bool> {};

TEST_P(MlpGhostClipping, MatchesDenseClippingOfMaterialisedGradients) {
  const bool per_layer = GetParam();
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(::testing::Message() << "seed=" << seed);
    const Problem p = random_problem(seed, 12, 6, 4);
    Mlp<double> model({6, 9, 4}, ActivationKind::kTanh, seed);
    const RowMajorMatrix<double> rows = materialised_per_example_gradients(model, p);
    const ClipConfig config = per_layer ? ClipConfig::per_group({0.4, 0.3}) : ClipConfig::flat(0.5);

    std::vector<double> dense(static_cast<std::size_t>(model.num_parameters()), 0.0);
    const ClipFactors expected = clip_and_accumulate<double>(
        rows, p.mask, config, dense,
        per_layer ? std::span<const std::int64_t>(model.layer_offsets()) : std::span<const std::int64_t>());
    const auto loss = softmax_cross_entropy<double>(model.forward(p.x), p.labels, p.mask);
    model.backward(loss.logit_grads);
    std::vector<double> ghost(dense.size(), 0.0);
    const ClipFactors got = model.clipped_gradient_sum(p.mask, config, ghost);
    for (std::size_t j = 0; j < dense.size(); ++j)
      EXPECT_NEAR(ghost[j], dense[j], 1e-12 + 1e-10 * std::abs(dense[j])) << j;
    for (Eigen::Index i = 0; i < rows.rows(); ++i) {
      if (!p.mask[i]) continue;  // the loss gives padding slots a zero gradient; the brute force does not
      EXPECT_NEAR(got.stats.norms[i], expected.stats.norms[i], 1e-10 * expected.stats.norms[i]);
    }
    EXPECT_EQ(got.stats.num_clipped, expected.stats.num_clipped);
    EXPECT_GT(got.stats.num_clipped, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(FlatAndPerLayer, MlpGhostClipping, ::testing::Bool());

// 6x6x2 images -> conv 3x3 (pad 1) -> tanh -> max pool 2 -> conv 2x2 stride 2 -> tanh -> avg pool 2 -> linear.
void build_small_cnn(Sequential<double>& model, std::uint64_t seed) {
  auto& conv1 = model.add<Conv2d<double>>(ImageShape{6, 6, 2}, 3, 3, 1, 1);
  model.add<Activation<double>>(ActivationKind::kTanh);
  auto& pool1 = model.add<Pool2d<double>>(conv1.output_shape(), 2, 1, PoolKind::kMax);
  auto& conv2 = model.add<Conv2d<double>>(pool1.output_shape(), 4, 2, 2, 0);
  model.add<Activation<double>>(ActivationKind::kTanh);
  auto& pool2 = model.add<Pool2d<double>>(conv2.output_shape(), 2, 1, PoolKind::kAverage);
  model.add<Linear<double>>(pool2.output_shape().size(), 3, true);
  model.finalize(seed);
}

TEST(Cnn, GradientMatchesCentralDifferences) {
  const Problem p = random_problem(21, 5, 72, 3);
  Sequential<double> model;
  build_small_cnn(model, 4);
  expect_gradient_matches_central_differences(model, p);
}

TEST(Cnn, InputGradientMatchesCentralDifferences) {
  // Conv2d's col2im and the pooling backward passes, checked through the input.
  const Problem p = random_problem(22, 2, 72, 3);
  Sequential<double> model;
  build_small_cnn(model, 5);
  Conv2d<double> probe(ImageShape{6, 6, 2}, 3, 3, 1, 1);
  std::vector<double> weights(static_cast<std::size_t>(probe.num_parameters()));
  probe.bind(weights.data());
  probe.initialize(9, 0);
  const RowMajorMatrix<double> y = probe.forward(p.x);
  const RowMajorMatrix<double> upstream = RowMajorMatrix<double>::Random(y.rows(), y.cols());
  const RowMajorMatrix<double> dx = probe.backward(upstream);
  RowMajorMatrix<double> x = p.x;
  for (Eigen::Index j = 0; j < x.cols(); j += 5) {
    const double saved = x(1, j);
    x(1, j) = saved + 1e-6;
    const double up = (probe.forward(x).array() * upstream.array()).sum();
    x(1, j) = saved - 1e-6;
    const double down = (probe.forward(x).array() * upstream.array()).sum();
    x(1, j) = saved;
    EXPECT_NEAR(dx(1, j), (up - down) / 2e-6, 1e-6) << j;
  }
  for (PoolKind kind : {PoolKind::kMax, PoolKind::kAverage}) {
    Pool2d<double> pool(ImageShape{6, 6, 2}, 2, 2, kind);
    const RowMajorMatrix<double> out = pool.forward(p.x);
    const RowMajorMatrix<double> g = RowMajorMatrix<double>::Random(out.rows(), out.cols());
    const RowMajorMatrix<double> back = pool.backward(g);
    for (Eigen::Index j = 0; j < x.cols(); j += 3) {
      const double saved = x(0, j);
      x(0, j) = saved + 1e-7;
      const double up = (pool.forward(x).array() * g.array()).sum();
      x(0, j) = saved - 1e-7;
      const double down = (pool.forward(x).array() * g.array()).sum();
      x(0, j) = saved;
      EXPECT_NEAR(back(0, j), (up - down) / 2e-7, 1e-6) << j;
    }
  }
}

struct ConvCase {
  ImageShape input;
  std::int64_t out_channels, kernel, stride, padding;
};

// Every geometry the run-wise im2col must handle: padding on one or both sides of a run, runs cut
// to nothing, strides past the kernel, non-square images, one and several channels.
const ConvCase kConvCases[] = {
    {{7, 5, 1}, 2, 3, 1, 1},   {{9, 9, 3}, 2, 4, 2, 3}, {{6, 8, 2}, 3, 2, 3, 0},
    {{28, 28, 1}, 4, 8, 2, 3}, {{5, 5, 2}, 2, 5, 1, 4}, {{4, 11, 3}, 1, 3, 2, 2},
};

// The convolution written out directly (no im2col): y[o] = bias[o] + sum over taps inside the image.
RowMajorMatrix<double> direct_convolution(const ConvCase& k, const std::vector<double>& params,
                                          const RowMajorMatrix<double>& x) {
  const std::int64_t oh_count = (k.input.height + 2 * k.padding - k.kernel) / k.stride + 1;
  const std::int64_t ow_count = (k.input.width + 2 * k.padding - k.kernel) / k.stride + 1;
  const std::int64_t patch = k.kernel * k.kernel * k.input.channels;
  RowMajorMatrix<double> y(x.rows(), oh_count * ow_count * k.out_channels);
  for (Eigen::Index b = 0; b < x.rows(); ++b)
    for (std::int64_t oh = 0; oh < oh_count; ++oh)
      for (std::int64_t ow = 0; ow < ow_count; ++ow)
        for (std::int64_t o = 0; o < k.out_channels; ++o) {
          double sum = params[static_cast<std::size_t>(k.out_channels * patch + o)];
          for (std::int64_t kh = 0; kh < k.kernel; ++kh)
            for (std::int64_t kw = 0; kw < k.kernel; ++kw)
              for (std::int64_t c = 0; c < k.input.channels; ++c) {
                const std::int64_t ih = oh * k.stride - k.padding + kh, iw = ow * k.stride - k.padding + kw;
                if (ih < 0 || ih >= k.input.height || iw < 0 || iw >= k.input.width) continue;
                sum += params[static_cast<std::size_t>(o * patch + (kh * k.kernel + kw) * k.input.channels + c)] *
                       x(b, (ih * k.input.width + iw) * k.input.channels + c);
              }
          y(b, (oh * ow_count + ow) * k.out_channels + o) = sum;
        }
  return y;
}

TEST(Cnn, ConvolutionMatchesDirectSumsAndItsAdjoint) {
  std::mt19937_64 rng(31);
  std::normal_distribution<double> normal;
  for (const ConvCase& k : kConvCases) {
    Conv2d<double> conv(k.input, k.out_channels, k.kernel, k.stride, k.padding);
    std::vector<double> params(static_cast<std::size_t>(conv.num_parameters()));
    for (double& v : params) v = normal(rng);
    conv.bind(params.data());
    RowMajorMatrix<double> x(3, k.input.size());
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    const RowMajorMatrix<double> y = conv.forward(x);
    const RowMajorMatrix<double> expected = direct_convolution(k, params, x);
    ASSERT_EQ(y.cols(), expected.cols());
    EXPECT_LT((y - expected).cwiseAbs().maxCoeff(), 1e-12) << k.input.height << "x" << k.input.width;
    // col2im is the adjoint of im2col: <dy, J dx> = <J^T dy, dx>, with J dx = conv(dx) - conv(0).
    RowMajorMatrix<double> dy(y.rows(), y.cols()), dx(x.rows(), x.cols());
    for (Eigen::Index i = 0; i < dy.size(); ++i) dy.data()[i] = normal(rng);
    for (Eigen::Index i = 0; i < dx.size(); ++i) dx.data()[i] = normal(rng);
    const RowMajorMatrix<double> back = conv.backward(dy);
    const RowMajorMatrix<double> j_dx =
        direct_convolution(k, params, dx) - direct_convolution(k, params, RowMajorMatrix<double>::Zero(3, x.cols()));
    const double lhs = (dy.array() * j_dx.array()).sum(), rhs = (back.array() * dx.array()).sum();
    EXPECT_NEAR(lhs, rhs, 1e-10 * (std::abs(lhs) + 1)) << k.input.height << "x" << k.input.width;
  }
}

TEST(Cnn, PoolingMatchesDirectWindowsAndSendsGradientToTheFirstMaximum) {
  std::mt19937_64 rng(32);
  for (PoolKind kind : {PoolKind::kMax, PoolKind::kAverage}) {
    for (const auto& [shape, kernel, stride] :
         {std::tuple{ImageShape{6, 6, 3}, 2, 1}, std::tuple{ImageShape{7, 5, 2}, 3, 2},
          std::tuple{ImageShape{4, 9, 1}, 2, 3}}) {
      Pool2d<double> pool(shape, kernel, stride, kind);
      // Values from a small set, so windows hold ties and the first maximum matters.
      RowMajorMatrix<double> x(2, shape.size());
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<double>(rng() % 4);
      const RowMajorMatrix<double> y = pool.forward(x);
      const ImageShape out = pool.output_shape();
      RowMajorMatrix<double> g(y.rows(), y.cols());
      for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = static_cast<double>(i % 7) + 1;
      const RowMajorMatrix<double> back = pool.backward(g);
      RowMajorMatrix<double> expected_back = RowMajorMatrix<double>::Zero(x.rows(), x.cols());
      for (Eigen::Index b = 0; b < x.rows(); ++b)
        for (std::int64_t oh = 0; oh < out.height; ++oh)
          for (std::int64_t ow = 0; ow < out.width; ++ow)
            for (std::int64_t c = 0; c < shape.channels; ++c) {
              double best = -1, sum = 0;
              std::int64_t best_index = -1;
              for (std::int64_t kh = 0; kh < kernel; ++kh)
                for (std::int64_t kw = 0; kw < kernel; ++kw) {
                  const std::int64_t i = ((oh * stride + kh) * shape.width + ow * stride + kw) * shape.channels + c;
                  sum += x(b, i);
                  if (x(b, i) > best) best = x(b, i), best_index = i;
                }
              const std::int64_t o = (oh * out.width + ow) * shape.channels + c;
              const double area = static_cast<double>(kernel * kernel);
              EXPECT_EQ(y(b, o), kind == PoolKind::kMax ? best : sum * (1.0 / area));
              if (kind == PoolKind::kMax) {
                expected_back(b, best_index) += g(b, o);
                continue;
              }
              for (std::int64_t kh = 0; kh < kernel; ++kh)
                for (std::int64_t kw = 0; kw < kernel; ++kw)
                  expected_back(b, ((oh * stride + kh) * shape.width + ow * stride + kw) * shape.channels + c) +=
                      g(b, o) * (1.0 / area);
            }
      EXPECT_LT((back - expected_back).cwiseAbs().maxCoeff(), 1e-12);
    }
  }
}

TEST(Cnn, GhostClippingMatchesMaterialisedPerExampleGradients) {
  for (bool per_layer : {false, true}) {
    const Problem p = random_problem(23, 8, 72, 3);
    Sequential<double> model;
    build_small_cnn(model, 6);
    const RowMajorMatrix<double> rows = materialised_per_example_gradients(model, p);
    const ClipConfig config = per_layer ? ClipConfig::per_group({0.2, 0.3, 0.1}) : ClipConfig::flat(0.3);
    std::vector<double> dense(static_cast<std::size_t>(model.num_parameters()), 0.0);
    clip_and_accumulate<double>(
        rows, p.mask, config, dense,
        per_layer ? std::span<const std::int64_t>(model.layer_offsets()) : std::span<const std::int64_t>());
    const auto loss = softmax_cross_entropy<double>(model.forward(p.x), p.labels, p.mask);
    model.backward(loss.logit_grads);
    std::vector<double> ghost(dense.size(), 0.0);
    const ClipFactors got = model.clipped_gradient_sum(p.mask, config, ghost);
    for (std::size_t j = 0; j < dense.size(); ++j)
      EXPECT_NEAR(ghost[j], dense[j], 1e-12 + 1e-10 * std::abs(dense[j])) << j;
    EXPECT_GT(got.stats.num_clipped, 0);
  }
}

TEST(Cnn, RejectsBadShapes) {
  EXPECT_THROW(Conv2d<float>(ImageShape{4, 4, 1}, 0, 3, 1, 1), InvalidArgument);
  EXPECT_THROW(Conv2d<float>(ImageShape{4, 4, 1}, 2, 0, 1, 0), InvalidArgument);
  EXPECT_THROW(Conv2d<float>(ImageShape{4, 4, 1}, 2, 3, 0, 1), InvalidArgument);
  EXPECT_THROW(Conv2d<float>(ImageShape{4, 4, 1}, 2, 3, 1, 3), InvalidArgument);
  EXPECT_THROW(Conv2d<float>(ImageShape{2, 2, 1}, 2, 5, 1, 0), InvalidArgument);
  EXPECT_THROW(Conv2d<float>(ImageShape{0, 4, 1}, 2, 3, 1, 1), InvalidArgument);
  EXPECT_THROW(Pool2d<float>(ImageShape{4, 4, 1}, 5, 1, PoolKind::kMax), InvalidArgument);
  EXPECT_THROW(Pool2d<float>(ImageShape{4, 4, 1}, 2, 0, PoolKind::kMax), InvalidArgument);
  EXPECT_THROW(Pool2d<float>(ImageShape{4, 4, 1}, 2, 1, static_cast<PoolKind>(7)), InvalidArgument);
  Conv2d<float> conv(ImageShape{4, 4, 1}, 2, 3, 1, 1);
  std::vector<float> w(static_cast<std::size_t>(conv.num_parameters()));
  conv.bind(w.data());
  EXPECT_THROW(conv.forward(RowMajorMatrix<float>::Zero(2, 15)), InvalidArgument);
  Sequential<float> empty;
  EXPECT_THROW(empty.finalize(1), InvalidArgument);
  Sequential<float> unfinalized;
  unfinalized.add<Activation<float>>(ActivationKind::kRelu);
  EXPECT_THROW(unfinalized.forward(RowMajorMatrix<float>::Zero(1, 3)), InvalidArgument);
}

TEST(SoftmaxCrossEntropy, ValuesAndPadding) {
  RowMajorMatrix<float> logits = RowMajorMatrix<float>::Zero(2, 4);
  logits(1, 2) = 100.0f;                    // large logits must not overflow
  std::vector<std::int32_t> labels{1, -7};  // the padding slot's label is never read
  std::vector<std::uint8_t> mask{1, 0};
  const auto r = softmax_cross_entropy<float>(logits, labels, mask);
  EXPECT_NEAR(r.total_loss, std::log(4.0), 1e-12);
  EXPECT_EQ(r.num_examples, 1);
  EXPECT_NEAR(r.logit_grads(0, 1), 0.25 - 1.0, 1e-7);
  EXPECT_NEAR(r.logit_grads(0, 0), 0.25, 1e-7);
  EXPECT_EQ(r.logit_grads.row(1).squaredNorm(), 0.0f);
  mask[1] = 1;
  EXPECT_THROW(softmax_cross_entropy<float>(logits, labels, mask), InvalidArgument);
  std::vector<std::int32_t> one_label{0};
  EXPECT_THROW(softmax_cross_entropy<float>(logits, one_label, mask), InvalidArgument);
  RowMajorMatrix<float> one_class = RowMajorMatrix<float>::Zero(2, 1);
  EXPECT_THROW(softmax_cross_entropy<float>(one_class, labels, mask), InvalidArgument);
}

TEST(Mlp, RejectsBadArguments) {
  EXPECT_THROW(Mlp<float>({5}, ActivationKind::kRelu, 1), InvalidArgument);
  EXPECT_THROW(Mlp<float>({5, 0, 2}, ActivationKind::kRelu, 1), InvalidArgument);
  EXPECT_THROW(Mlp<float>({5, 3, 2}, static_cast<ActivationKind>(4), 1), InvalidArgument);
  Mlp<float> model({3, 4, 2}, ActivationKind::kRelu, 1);
  std::vector<float> grad(static_cast<std::size_t>(model.num_parameters()), 0.0f);
  std::vector<std::uint8_t> mask(2, 1);
  EXPECT_THROW(model.gradient_sum(mask, grad), InvalidArgument);  // no forward/backward yet
  RowMajorMatrix<float> wrong_width = RowMajorMatrix<float>::Ones(2, 4);
  EXPECT_THROW(model.forward(wrong_width), InvalidArgument);
  RowMajorMatrix<float> x = RowMajorMatrix<float>::Ones(2, 3);
  model.forward(x);
  EXPECT_THROW(model.backward(RowMajorMatrix<float>::Ones(3, 2)), InvalidArgument);
  model.backward(RowMajorMatrix<float>::Ones(2, 2));
  std::vector<float> short_grad(3, 0.0f);
  EXPECT_THROW(model.gradient_sum(mask, short_grad), InvalidArgument);
  EXPECT_THROW(model.clipped_gradient_sum(mask, ClipConfig::per_group({1.0, 1.0, 1.0}), grad), InvalidArgument);
  EXPECT_NO_THROW(model.clipped_gradient_sum(mask, ClipConfig::per_group({1.0, 1.0}), grad));
}

TEST(Mlp, InitialisationIsDeterministicInTheSeed) {
  Mlp<float> a({4, 8, 3}, ActivationKind::kRelu, 5), b({4, 8, 3}, ActivationKind::kRelu, 5),
      c({4, 8, 3}, ActivationKind::kRelu, 6);
  EXPECT_TRUE(std::equal(a.parameters().begin(), a.parameters().end(), b.parameters().begin()));
  EXPECT_FALSE(std::equal(a.parameters().begin(), a.parameters().end(), c.parameters().begin()));
  for (float w : a.parameters().first(32)) EXPECT_LE(std::abs(w), 0.5f);  // bound 1/sqrt(4)
}

}  // namespace
}  // namespace dpsgd::nn
