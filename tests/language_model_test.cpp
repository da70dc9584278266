// Tests of the language-model layers of dpsgd::nn: gradients against finite differences, per-sequence
// ghost norms and clipped sums against materialised per-example gradients (repeated tokens, padding,
// length 1 and full-length sequences), fine-tuning modes, gradient accumulation, the clip bound under
// extreme magnitudes, and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/causal_self_attention.hpp"
#include "dpsgd/nn/decoder_lm.hpp"
#include "dpsgd/nn/layer_norm.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/token_cross_entropy.hpp"
#include "dpsgd/sampling/micro_batches.hpp"

namespace dpsgd::nn {
namespace {

using Matrix = RowMajorMatrix<double>;

Matrix random_matrix(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Matrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// Central difference of f at x along every coordinate of x.
Matrix numeric_gradient(const std::function<double(const Matrix&)>& f, Matrix x, double h = 1e-6) {
  Matrix g(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double saved = x.data()[i];
    x.data()[i] = saved + h;
    const double up = f(x);
    x.data()[i] = saved - h;
    const double down = f(x);
    x.data()[i] = saved;
    g.data()[i] = (up - down) / (2 * h);
  }
  return g;
}

double relative_error(const Matrix& a, const Matrix& b) { return (a - b).norm() / std::max(1e-30, b.norm()); }

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(11);
  const Matrix x = random_matrix(rng, 4, 7, 2.0), weights = random_matrix(rng, 4, 7);
  Activation<double> gelu(ActivationKind::kGelu);
  const auto loss = [&](const Matrix& in) { return gelu.forward(in).cwiseProduct(weights).sum(); };
  const Matrix expected = numeric_gradient(loss, x);
  gelu.forward(x);
  EXPECT_LT(relative_error(gelu.backward(weights), expected), 1e-8);
  // GELU(0) = 0, GELU(x) -> x for large x, -> 0 for very negative x.
  Matrix probe(1, 3);
  probe << 0.0, 10.0, -10.0;
  const Matrix out = gelu.forward(probe);
  EXPECT_EQ(out(0, 0), 0.0);
  EXPECT_NEAR(out(0, 1), 10.0, 1e-12);
  EXPECT_NEAR(out(0, 2), 0.0, 1e-12);
}

TEST(LayerNorm, InputAndParameterGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(12);
  const std::int64_t batch = 2, t = 3, d = 5;
  Matrix x = random_matrix(rng, batch * t, d);
  x.col(0).array() += 1e3;  // an offset the double-precision variance must survive
  const Matrix weights = random_matrix(rng, batch * t, d);
  std::vector<double> params(2 * d);
  LayerNorm<double> norm(d);
  norm.bind(params.data());
  norm.initialize(0, 0);
  for (auto& p : params) p += 0.3 * std::normal_distribution<double>()(rng);
  const auto loss = [&](const Matrix& in) { return norm.forward(in).cwiseProduct(weights).sum(); };
  const Matrix expected_input = numeric_gradient(loss, x);
  norm.forward(x);
  EXPECT_LT(relative_error(norm.backward(weights), expected_input), 1e-6);
  // The clipped sum with factor 1 for both examples is the parameter gradient.
  std::vector<double> grad(2 * d, 0.0);
  norm.accumulate_clipped_gradient(batch, Eigen::MatrixXd::Ones(batch, 1), 0, grad);
  Eigen::Map<Matrix> p(params.data(), 1, 2 * d);
  const auto param_loss = [&](const Matrix& values) {
    p = values;
    return norm.forward(x).cwiseProduct(weights).sum();
  };
  const Matrix expected_params = numeric_gradient(param_loss, Matrix(p));
  EXPECT_LT(relative_error(Eigen::Map<Matrix>(grad.data(), 1, 2 * d), expected_params), 1e-6);
}

TEST(CausalSelfAttention, GradientsMatchFiniteDifferencesAndStayCausal) {
  std::mt19937_64 rng(13);
  const std::int64_t batch = 2, t = 4, d = 6, heads = 2;
  CausalSelfAttention<double> attention(d, heads);
  std::vector<double> params(static_cast<std::size_t>(attention.num_parameters()));
  attention.bind(params.data());
  attention.initialize(5, 0);
  const Matrix x = random_matrix(rng, batch * t, d), weights = random_matrix(rng, batch * t, d);
  const auto loss = [&](const Matrix& in) { return attention.forward(in, batch).cwiseProduct(weights).sum(); };
  const Matrix expected = numeric_gradient(loss, x);
  attention.forward(x, batch);
  EXPECT_LT(relative_error(attention.backward(weights), expected), 1e-6);
  std::vector<double> grad(params.size(), 0.0);
  attention.accumulate_clipped_gradient(batch, Eigen::MatrixXd::Ones(batch, 1), 0, grad);
  Eigen::Map<Matrix> p(params.data(), 1, static_cast<Eigen::Index>(params.size()));
  const auto param_loss = [&](const Matrix& values) {
    p = values;
    return attention.forward(x, batch).cwiseProduct(weights).sum();
  };
  const Matrix expected_params = numeric_gradient(param_loss, Matrix(p));
  EXPECT_LT(relative_error(Eigen::Map<Matrix>(grad.data(), 1, p.cols()), expected_params), 1e-6);
  // Causality and isolation: changing the last position of example 0 changes no other output row.
  const Matrix before = attention.forward(x, batch);
  Matrix changed = x;
  changed.row(t - 1).setConstant(7.0);
  const Matrix after = attention.forward(changed, batch);
  for (Eigen::Index row = 0; row < batch * t; ++row) {
    if (row == t - 1) continue;
    EXPECT_EQ((before.row(row) - after.row(row)).norm(), 0.0) << "row " << row;
  }
}

// nn::Linear on sequences keeps each example's gradient as a dense row where that is cheaper than a
// ghost norm plus a second GEMM; the limit 0 forces the ghost route. Both must clip alike, and the
// kept rows must follow each new backward pass.
TEST(SequenceLinear, KeptRowsAndGhostRouteClipAlike) {
  std::mt19937_64 rng(21);
  const std::int64_t batch = 4, t = 6, in = 5, out = 7;
  const Matrix x = random_matrix(rng, batch * t, in);
  std::vector<double> params(static_cast<std::size_t>(in * out + out));
  for (double& p : params) p = std::normal_distribution<double>(0.0, 0.5)(rng);
  Linear<double> rows_route(in, out), ghost_route(in, out);
  rows_route.bind(params.data());
  ghost_route.bind(params.data());
  ghost_route.set_per_example_rows_limit(0);
  const std::vector<std::uint8_t> mask{1, 1, 0, 1};
  for (int pass = 0; pass < 2; ++pass) {
    const Matrix dy = random_matrix(rng, batch * t, out, pass == 0 ? 1.0 : 3.0);
    std::vector<std::vector<double>> sums;
    std::vector<SquaredNorms> norms;
    for (Linear<double>* layer : {&rows_route, &ghost_route}) {
      layer->forward(x);
      layer->backward(dy);
      norms.push_back(SquaredNorms::Zero(batch, 1));
      layer->accumulate_squared_norms(batch, norms.back(), 0);
      const ClipFactors f = compute_clip_factors(norms.back(), mask, ClipConfig::flat(0.5));
      sums.emplace_back(params.size(), 0.0);
      layer->accumulate_clipped_gradient(batch, f.factors, 0, sums.back());
    }
    for (std::int64_t i = 0; i < batch; ++i) EXPECT_NEAR(norms[0](i, 0), norms[1](i, 0), 1e-10 * norms[1](i, 0));
    for (std::size_t j = 0; j < params.size(); ++j) EXPECT_NEAR(sums[0][j], sums[1][j], 1e-12) << "pass " << pass;
  }
  // Without norms first (the non-private sum) nothing is kept: the plain GEMM route, same result.
  const Eigen::MatrixXd ones = Eigen::MatrixXd::Ones(batch, 1);
  std::vector<double> plain_rows(params.size(), 0.0), plain_ghost(params.size(), 0.0);
  rows_route.accumulate_clipped_gradient(batch, ones, 0, plain_rows);
  ghost_route.accumulate_clipped_gradient(batch, ones, 0, plain_ghost);
  EXPECT_EQ(plain_rows, plain_ghost);
  EXPECT_THROW(rows_route.set_per_example_rows_limit(-1), InvalidArgument);
}

TEST(TokenCrossEntropy, PerExampleMeanAndItsGradient) {
  std::mt19937_64 rng(14);
  const std::int64_t batch = 2, t = 3, vocab = 4;
  const Matrix logits = random_matrix(rng, batch * t, vocab);
  const std::vector<std::int32_t> targets = {1, 2, 3, 0, 99, 99};
  const std::vector<std::uint8_t> mask = {1, 1, 1, 1, 0, 0};
  const auto loss = token_cross_entropy<double>(logits, targets, mask, batch);
  EXPECT_EQ(loss.num_tokens, 4);
  EXPECT_EQ(loss.logit_grads.bottomRows(2).norm(), 0.0);
  // Example 0's gradient is that of its mean loss: 1/3 of each position's softmax gradient.
  const auto mean_loss_0 = [&](const Matrix& l) {
    double total = 0;
    for (int s = 0; s < 3; ++s) {
      total += std::log(l.row(s).array().exp().sum()) - l(s, targets[static_cast<std::size_t>(s)]);
    }
    return total / 3;
  };
  const Matrix expected = numeric_gradient(mean_loss_0, logits.topRows(3).eval());
  EXPECT_LT(relative_error(loss.logit_grads.topRows(3), expected), 1e-8);
  EXPECT_THROW(token_cross_entropy<double>(logits, std::vector<std::int32_t>{1, 2, 4, 0, 0, 0}, mask, batch),
               InvalidArgument);
}

// A small model and a batch with repeated tokens, a length-1 sequence, a full one and a padding slot.
struct LmCase {
  DecoderLMConfig config{.vocab_size = 5, .context = 6, .d_model = 8, .heads = 2, .layers = 2, .mlp_hidden = 12};
  std::int64_t batch = 4, t = 6;
  std::vector<std::int32_t> tokens, targets;
  std::vector<std::uint8_t> positions, slots = {1, 1, 1, 0};
  std::vector<std::int64_t> lengths = {6, 1, 4, 0};

  LmCase() {
    std::mt19937_64 rng(15);
    for (std::int64_t i = 0; i < batch; ++i) {
      for (std::int64_t s = 0; s < t; ++s) {
        const bool real = s < lengths[static_cast<std::size_t>(i)];
        // Vocabulary 5 over up to 6 positions: repeated tokens in every long sequence.
        tokens.push_back(real ? static_cast<std::int32_t>(rng() % 5) : 0);
        targets.push_back(real ? static_cast<std::int32_t>(rng() % 5) : 0);
        positions.push_back(real ? 1 : 0);
      }
    }
  }
};

template <typename Scalar>
void forward_backward(DecoderLM<Scalar>& model, const LmCase& c) {
  const RowMajorMatrix<Scalar> logits = model.forward(c.tokens, c.positions, c.batch);
  model.backward(token_cross_entropy<Scalar>(logits, c.targets, c.positions, c.batch).logit_grads);
}

// The clipped sum of the case's batch after a forward and backward pass.
template <typename Scalar>
std::vector<Scalar> clipped_sum(DecoderLM<Scalar>& model, const LmCase& c, const ClipConfig& clip) {
  forward_backward(model, c);
  std::vector<Scalar> gradient(static_cast<std::size_t>(model.num_parameters()), Scalar{0});
  model.clipped_gradient_sum(c.slots, clip, gradient);
  return gradient;
}

// Slots [begin, begin + size) of a case, as a case of its own.
LmCase slice(const LmCase& c, std::int64_t begin, std::int64_t size) {
  LmCase part = c;
  part.batch = size;
  const auto from = static_cast<std::ptrdiff_t>(begin * c.t), to = static_cast<std::ptrdiff_t>((begin + size) * c.t);
  part.tokens.assign(c.tokens.begin() + from, c.tokens.begin() + to);
  part.targets.assign(c.targets.begin() + from, c.targets.begin() + to);
  part.positions.assign(c.positions.begin() + from, c.positions.begin() + to);
  part.slots.assign(c.slots.begin() + begin, c.slots.begin() + begin + size);
  part.lengths.assign(c.lengths.begin() + begin, c.lengths.begin() + begin + size);
  return part;
}

// Example i's gradient, materialised: the gradient sum with only slot i's mask set.
std::vector<double> per_example_gradient(const DecoderLM<double>& model, const LmCase& c, std::int64_t i) {
  std::vector<std::uint8_t> one(static_cast<std::size_t>(c.batch), 0);
  one[static_cast<std::size_t>(i)] = 1;
  std::vector<double> grad(static_cast<std::size_t>(model.num_parameters()), 0.0);
  model.gradient_sum(one, grad);
  return grad;
}

double squared_norm(const std::vector<double>& v) {
  double total = 0;
  for (const double x : v) total += x * x;
  return total;
}

TEST(DecoderLM, GradientMatchesFiniteDifferences) {
  LmCase c;
  DecoderLM<double> model(c.config, 3);
  forward_backward(model, c);
  std::vector<double> grad(static_cast<std::size_t>(model.num_parameters()), 0.0);
  model.gradient_sum(c.slots, grad);
  // Loss summed over the real slots, as the gradient sum is.
  const auto loss = [&]() {
    const Matrix logits = model.forward(c.tokens, c.positions, c.batch);
    std::vector<std::uint8_t> masked = c.positions;
    const auto l = token_cross_entropy<double>(logits, c.targets, masked, c.batch);
    double total = 0;  // per-example means: recompute from the per-position gradient weights
    for (std::int64_t i = 0; i < c.batch; ++i) {
      if (c.slots[static_cast<std::size_t>(i)] == 0 || c.lengths[static_cast<std::size_t>(i)] == 0) continue;
      for (std::int64_t s = i * c.t; s < i * c.t + c.lengths[static_cast<std::size_t>(i)]; ++s) {
        const auto row = logits.row(s);
        total += (std::log(row.array().exp().sum()) - row(c.targets[static_cast<std::size_t>(s)])) /
                 static_cast<double>(c.lengths[static_cast<std::size_t>(i)]);
      }
    }
    (void)l;
    return total;
  };
  auto params = model.parameters();
  std::mt19937_64 rng(16);
  // 60 coordinates spread over every part of the model.
  int nonzero = 0;
  for (int probe = 0; probe < 60; ++probe) {
    const std::size_t j = static_cast<std::size_t>(rng() % params.size());
    const double saved = params[j], h = 1e-6;
    params[j] = saved + h;
    const double up = loss();
    params[j] = saved - h;
    const double down = loss();
    params[j] = saved;
    EXPECT_NEAR(grad[j], (up - down) / (2 * h), 1e-6 * std::max(1.0, std::abs(grad[j]))) << "parameter " << j;
    nonzero += std::abs(grad[j]) > 1e-4;
  }
  EXPECT_GE(nonzero, 30);  // the probes test something: most coordinates have a gradient
}

TEST(DecoderLM, GhostNormsAndClippedSumMatchMaterialisedPerExampleGradients) {
  LmCase c;
  DecoderLM<double> model(c.config, 4);
  forward_backward(model, c);
  const ClipConfig clip = ClipConfig::flat(0.05);
  std::vector<double> clipped(static_cast<std::size_t>(model.num_parameters()), 0.0);
  const ClipFactors factors = model.clipped_gradient_sum(c.slots, clip, clipped);
  std::vector<double> expected(clipped.size(), 0.0);
  for (std::int64_t i = 0; i < c.batch; ++i) {
    const std::vector<double> g = per_example_gradient(model, c, i);
    const double norm = std::sqrt(squared_norm(g));
    if (c.slots[static_cast<std::size_t>(i)] == 0) continue;
    EXPECT_NEAR(factors.stats.norms[static_cast<std::size_t>(i)], norm, 1e-9 * norm) << "example " << i;
    const double factor = std::min(1.0, 0.05 / norm);
    EXPECT_NEAR(factors.factors(i, 0), factor, 1e-9);
    for (std::size_t j = 0; j < g.size(); ++j) expected[j] += factor * g[j];
    // Each example's gradient is its own: a batch of one gives the same.
    const LmCase alone = slice(c, i, 1);
    DecoderLM<double> single(c.config, 4);
    forward_backward(single, alone);
    std::vector<double> g1(g.size(), 0.0);
    single.gradient_sum(std::vector<std::uint8_t>{1}, g1);
    for (std::size_t j = 0; j < g.size(); ++j) ASSERT_NEAR(g1[j], g[j], 1e-12 * std::max(1.0, std::abs(g[j])));
  }
  for (std::size_t j = 0; j < clipped.size(); ++j) ASSERT_NEAR(clipped[j], expected[j], 1e-12) << "parameter " << j;
  EXPECT_EQ(factors.stats.num_clipped, 3);
}

TEST(DecoderLM, PaddingContributesNothing) {
  LmCase c;
  DecoderLM<float> model(c.config, 5);
  const ClipConfig clip = ClipConfig::flat(1.0);
  const std::vector<float> reference = clipped_sum(model, c, clip);
  // Other ids and targets at every padding position and in the padding slot: the same sum, bit for bit.
  LmCase other = c;
  for (std::size_t s = 0; s < other.tokens.size(); ++s) {
    if (other.positions[s] == 0) other.tokens[s] = 4, other.targets[s] = 3;
  }
  for (std::int64_t s = 3 * c.t; s < 4 * c.t; ++s) {
    other.tokens[static_cast<std::size_t>(s)] = 2;
    other.positions[static_cast<std::size_t>(s)] = 1;  // a full sequence in a slot whose mask is 0
  }
  EXPECT_EQ(clipped_sum(model, other, clip), reference);
  // Control: a change at a real position does change the sum.
  other.tokens[0] = (other.tokens[0] + 1) % 5;
  EXPECT_NE(clipped_sum(model, other, clip), reference);
}

// The per-example gradient restricted to the trainable ranges, for the fine-tuning modes.
void check_mode(Trainable mode, std::int64_t expected_trainable) {
  LmCase c;
  DecoderLM<double> full(c.config, 6);
  forward_backward(full, c);
  DecoderLM<double> tuned(c.config, 6);
  tuned.set_trainable(mode);
  EXPECT_EQ(tuned.num_trainable(), expected_trainable);
  forward_backward(tuned, c);
  std::vector<double> clipped(static_cast<std::size_t>(tuned.num_parameters()), 0.0);
  const ClipFactors factors = tuned.clipped_gradient_sum(c.slots, ClipConfig::flat(1e-3), clipped);
  std::vector<std::uint8_t> in_range(clipped.size(), 0);
  for (const ParameterRange& r : tuned.trainable_ranges()) {
    std::fill(in_range.begin() + r.offset, in_range.begin() + r.offset + r.size, 1);
  }
  std::vector<double> expected(clipped.size(), 0.0);
  for (std::int64_t i = 0; i < 3; ++i) {
    std::vector<double> g = per_example_gradient(full, c, i);
    for (std::size_t j = 0; j < g.size(); ++j) g[j] *= in_range[j];
    const double norm = std::sqrt(squared_norm(g));
    EXPECT_NEAR(factors.stats.norms[static_cast<std::size_t>(i)], norm, 1e-9 * norm);
    for (std::size_t j = 0; j < g.size(); ++j) expected[j] += std::min(1.0, 1e-3 / norm) * g[j];
  }
  for (std::size_t j = 0; j < clipped.size(); ++j) {
    ASSERT_NEAR(clipped[j], expected[j], 1e-14) << "parameter " << j;
    if (in_range[j] == 0) {
      ASSERT_EQ(clipped[j], 0.0) << "frozen parameter " << j;
    }
  }
}

TEST(DecoderLM, BiasOnlyFineTuningClipsTheBiasesOnly) {
  // Per block: ln1 beta 8, qkv bias 24, proj bias 8, ln2 beta 8, fc1 bias 12, fc2 bias 8 = 68; two
  // blocks, the final norm's beta 8 and the head's bias 5.
  check_mode(Trainable::kBiasOnly, 2 * 68 + 8 + 5);
}

TEST(DecoderLM, LastLayerFineTuningClipsTheHeadOnly) { check_mode(Trainable::kLastLayer, 8 * 5 + 5); }

TEST(DecoderLM, MicroBatchesAddUpToTheWholeBatch) {
  LmCase c;
  DecoderLM<double> model(c.config, 7);
  const ClipConfig clip = ClipConfig::flat(0.05);
  const std::vector<double> whole = clipped_sum(model, c, clip);
  Batch batch;
  batch.indices = {0, 1, 2, Batch::kPaddingIndex};
  batch.mask = c.slots;
  std::vector<double> accumulated(whole.size(), 0.0);
  const std::vector<MicroBatch> parts = micro_batches(batch, 3);
  ASSERT_EQ(parts.size(), 2u);
  for (const MicroBatch& part : parts) {
    forward_backward(model, slice(c, part.begin, part.size));
    model.clipped_gradient_sum(part.mask, clip, accumulated);
  }
  for (std::size_t j = 0; j < whole.size(); ++j) ASSERT_NEAR(accumulated[j], whole[j], 1e-13) << "parameter " << j;
}

// Released norm of one example's clipped contribution, in double from the float sum.
double released_norm(const std::vector<float>& gradient) {
  double total = 0;
  for (const float x : gradient) total += static_cast<double>(x) * x;
  return std::sqrt(total);
}

TEST(DecoderLM, ClipBoundHoldsForExtremeMagnitudes) {
  LmCase c;
  int checked = 0;
  for (const float scale : {1e-6f, 1.0f, 30.0f, 1e4f}) {
    DecoderLM<float> model(c.config, 8);
    for (float& p : model.parameters()) p *= scale;
    forward_backward(model, c);
    for (std::int64_t i = 0; i < 3; ++i) {
      std::vector<std::uint8_t> one(4, 0);
      one[static_cast<std::size_t>(i)] = 1;
      for (const double bound : {1e-3, 1.0}) {
        std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()), 0.0f);
        const ClipFactors f = model.clipped_gradient_sum(one, ClipConfig::flat(bound), gradient);
        if (f.stats.num_nonfinite > 0) continue;  // dropped: adds nothing, checked below
        EXPECT_LE(released_norm(gradient), bound * (1 + 1e-4)) << "scale " << scale << " example " << i;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20);  // of 24: at most the largest scale's examples may be dropped as non-finite
  // Control: without clipping (the plain sum) the largest scale's gradient exceeds the bound.
  DecoderLM<float> model(c.config, 8);
  for (float& p : model.parameters()) p *= 30.0f;
  forward_backward(model, c);
  std::vector<float> plain(static_cast<std::size_t>(model.num_parameters()), 0.0f);
  model.gradient_sum(std::vector<std::uint8_t>{1, 0, 0, 0}, plain);
  EXPECT_GT(released_norm(plain), 1e-3);
}

TEST(DecoderLM, RefusesBadArguments) {
  LmCase c;
  DecoderLMConfig bad = c.config;
  bad.heads = 3;
  EXPECT_THROW(DecoderLM<float>(bad, 0), InvalidArgument);
  bad = c.config;
  bad.vocab_size = 1;
  EXPECT_THROW(DecoderLM<float>(bad, 0), InvalidArgument);
  DecoderLM<float> model(c.config, 0);
  std::vector<std::int32_t> tokens = c.tokens;
  tokens[0] = 5;  // vocabulary is 5
  EXPECT_THROW(model.forward(tokens, c.positions, c.batch), InvalidArgument);
  const std::vector<std::int32_t> too_long(2 * 7, 0);
  EXPECT_THROW(model.forward(too_long, std::vector<std::uint8_t>(14, 1), 2), InvalidArgument);
  EXPECT_THROW(model.forward(c.tokens, std::vector<std::uint8_t>(3, 1), c.batch), InvalidArgument);
  std::vector<float> gradient(static_cast<std::size_t>(model.num_parameters()), 0.0f);
  EXPECT_THROW(model.clipped_gradient_sum(c.slots, ClipConfig::flat(1.0), gradient), InvalidArgument);  // no forward
  forward_backward(model, c);
  EXPECT_THROW(model.clipped_gradient_sum(c.slots, ClipConfig::per_group({1.0, 1.0}), gradient), InvalidArgument);
  EXPECT_THROW(model.clipped_gradient_sum(std::vector<std::uint8_t>{1}, ClipConfig::flat(1.0), gradient),
               InvalidArgument);
  Batch batch;
  batch.indices = {0, 1};
  batch.mask = {1, 1};
  EXPECT_THROW(micro_batches(batch, 0), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd::nn
