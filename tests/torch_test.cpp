// Tests of dpsgd::torch: every layer's clipped gradient sums against per-example autograd (one
// backward per example), a composite model (embedding, layer norm, attention of linear layers, MLP)
// with repeated tokens, padding, frozen parameters and sequences, the private optimiser end to end,
// and the setups it must refuse.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/torch/conv2d.hpp"
#include "dpsgd/torch/embedding.hpp"
#include "dpsgd/torch/layer_norm.hpp"
#include "dpsgd/torch/linear.hpp"
#include "dpsgd/torch/private_optimizer.hpp"

namespace dpsgd {
namespace {

namespace F = ::torch::nn::functional;

// A one-head causal self-attention block and MLP on token embeddings: every trainable parameter lives
// in a dpsgd::torch layer, and the linear layers see [B, T, d] sequences.
struct TinyLmImpl : ::torch::nn::Module {
  TinyLmImpl(std::int64_t vocab, std::int64_t d)
      : embed(register_module("embed", torch::Embedding(vocab, d))),
        norm(register_module("norm", torch::LayerNorm(d))),
        q(register_module("q", torch::Linear(d, d))),
        k(register_module("k", torch::Linear(d, d))),
        v(register_module("v", torch::Linear(d, d))),
        o(register_module("o", torch::Linear(::torch::nn::LinearOptions(d, d).bias(false)))),
        hidden(register_module("hidden", torch::Linear(d, 2 * d))),
        out(register_module("out", torch::Linear(2 * d, vocab))) {}

  ::torch::Tensor forward(const ::torch::Tensor& tokens) {
    const ::torch::Tensor x = norm(embed(tokens));
    const std::int64_t t = tokens.size(1);
    const ::torch::Tensor scores = ::torch::matmul(q(x), k(x).transpose(1, 2)) / std::sqrt(double(x.size(2)));
    const ::torch::Tensor causal = ::torch::ones({t, t}).triu(1).to(::torch::kBool);
    const ::torch::Tensor attention = ::torch::softmax(scores.masked_fill(causal, -1e9), -1);
    const ::torch::Tensor h = x + o(::torch::matmul(attention, v(x)));
    return out(::torch::tanh(hidden(h)));
  }

  torch::Embedding embed;
  torch::LayerNorm norm;
  torch::Linear q, k, v, o, hidden, out;
};
// TORCH_MODULE(TinyLm), spelled out: the macro's unqualified torch:: would mean dpsgd::torch here.
class TinyLm : public ::torch::nn::ModuleHolder<TinyLmImpl> {
 public:
  using ::torch::nn::ModuleHolder<TinyLmImpl>::ModuleHolder;
};

// Summed next-token loss of each example (tokens [B, T]): per-example losses add, so the loss of a
// batch is the sum of its examples' losses.
::torch::Tensor lm_loss(TinyLm& model, const ::torch::Tensor& tokens) {
  const ::torch::Tensor logits = model->forward(tokens);
  const std::int64_t vocab = logits.size(2);
  return F::cross_entropy(logits.slice(1, 0, -1).reshape({-1, vocab}), tokens.slice(1, 1).reshape({-1}),
                          F::CrossEntropyFuncOptions().reduction(::torch::kSum));
}

std::vector<::torch::Tensor> trainable(::torch::nn::Module& model) {
  std::vector<::torch::Tensor> result;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) result.push_back(p);
  }
  return result;
}

std::vector<torch::GhostClippable*> layers_of(::torch::nn::Module& model) {
  std::vector<torch::GhostClippable*> result;
  for (const auto& m : model.modules()) {
    if (auto* layer = dynamic_cast<torch::GhostClippable*>(m.get())) result.push_back(layer);
  }
  return result;
}

// The reference: for each real example alone, autograd's gradient of its loss, clipped to C as one
// vector over all trainable parameters, summed in double.
// `norms`, if given, receives each slot's gradient norm (0 for padding).
template <typename Loss>
std::vector<::torch::Tensor> brute_force_clipped_sum(::torch::nn::Module& model, const std::vector<std::uint8_t>& mask,
                                                     double clip, Loss&& example_loss,
                                                     std::vector<double>* norms = nullptr) {
  const std::vector<::torch::Tensor> params = trainable(model);
  std::vector<::torch::Tensor> sums;
  for (const auto& p : params) sums.push_back(::torch::zeros_like(p, ::torch::kFloat64));
  if (norms != nullptr) norms->assign(mask.size(), 0.0);
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == 0) continue;
    const std::vector<::torch::Tensor> grads =
        ::torch::autograd::grad({example_loss(static_cast<std::int64_t>(i))}, params, {}, false, false, true);
    double squared = 0.0;
    for (const auto& g : grads) {
      if (g.defined()) squared += g.to(::torch::kFloat64).pow(2).sum().item<double>();
    }
    const double factor = std::min(1.0, clip / std::sqrt(squared));
    if (norms != nullptr) (*norms)[i] = std::sqrt(squared);
    for (std::size_t k = 0; k < grads.size(); ++k) {
      if (grads[k].defined()) sums[k] += factor * grads[k].to(::torch::kFloat64);
    }
  }
  return sums;
}

// dpsgd::torch's clipped sums for the batch loss, through the layers' records.
std::vector<::torch::Tensor> ghost_clipped_sum(::torch::nn::Module& model, const std::vector<std::uint8_t>& mask,
                                               double clip, const ::torch::Tensor& batch_loss,
                                               std::vector<double>* norms = nullptr) {
  batch_loss.backward();
  const auto batch = static_cast<std::int64_t>(mask.size());
  SquaredNorms squared_norms = SquaredNorms::Zero(batch, 1);
  for (auto* layer : layers_of(model)) layer->accumulate_squared_norms(batch, squared_norms);
  if (norms != nullptr) {
    norms->clear();
    for (std::int64_t i = 0; i < batch; ++i) norms->push_back(std::sqrt(squared_norms(i, 0)));
  }
  const ClipFactors f = compute_clip_factors(squared_norms, mask, ClipConfig::flat(clip));
  for (auto* layer : layers_of(model)) layer->write_clipped_gradients(batch, f.factors);
  std::vector<::torch::Tensor> result;
  for (const auto& p : trainable(model)) result.push_back(p.grad().to(::torch::kFloat64));
  for (auto* layer : layers_of(model)) layer->clear_record();
  return result;
}

void set_private(::torch::nn::Module& model, bool on) {
  for (auto* layer : layers_of(model)) layer->set_private(on);
}

void expect_close(const std::vector<::torch::Tensor>& got, const std::vector<::torch::Tensor>& want,
                  double tolerance = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 0.0;
  for (const auto& w : want) scale = std::max(scale, w.abs().max().item<double>());
  ASSERT_GT(scale, 0.0);
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_LE((got[k] - want[k]).abs().max().item<double>() / scale, tolerance) << "parameter " << k;
  }
}

TEST(TorchLayers, LinearMatchesPerExampleAutograd) {
  ::torch::manual_seed(1);
  for (const bool bias : {true, false}) {
    for (const bool sequence : {false, true}) {
      torch::Linear layer(::torch::nn::LinearOptions(6, 4).bias(bias));
      const ::torch::Tensor x = sequence ? ::torch::randn({5, 3, 6}) : ::torch::randn({5, 6});
      const std::vector<std::uint8_t> mask{1, 1, 0, 1, 1};
      const auto loss_of = [&](const ::torch::Tensor& input) { return ::torch::tanh(layer(input)).pow(2).sum(); };
      const auto reference =
          brute_force_clipped_sum(*layer, mask, 0.5, [&](std::int64_t i) { return loss_of(x.slice(0, i, i + 1)); });
      layer->set_private(true);
      const auto ghost = ghost_clipped_sum(*layer, mask, 0.5, loss_of(x));
      layer->set_private(false);
      expect_close(ghost, reference);
    }
  }
}

TEST(TorchLayers, EmbeddingWithRepeatedTokensMatchesPerExampleAutograd) {
  ::torch::manual_seed(2);
  torch::Embedding layer(5, 3);
  // Tokens repeat within examples (a vocabulary of 5 over 6 positions), so positions must group.
  const ::torch::Tensor tokens = ::torch::tensor({0, 1, 1, 4, 1, 0, 2, 2, 2, 2, 2, 2, 3, 0, 4, 3, 1, 0}).view({3, 6});
  const ::torch::Tensor weights = ::torch::randn({3, 6, 3});
  const std::vector<std::uint8_t> mask{1, 1, 1};
  const auto loss_of = [&](const ::torch::Tensor& t, const ::torch::Tensor& w) { return (layer(t) * w).sum(); };
  const auto reference = brute_force_clipped_sum(*layer, mask, 2.0, [&](std::int64_t i) {
    return loss_of(tokens.slice(0, i, i + 1), weights.slice(0, i, i + 1));
  });
  layer->set_private(true);
  const auto ghost = ghost_clipped_sum(*layer, mask, 2.0, loss_of(tokens, weights));
  expect_close(ghost, reference);
}

TEST(TorchLayers, LayerNormMatchesPerExampleAutograd) {
  ::torch::manual_seed(3);
  torch::LayerNorm layer(4);
  {
    const ::torch::NoGradGuard no_grad;
    layer->weight.uniform_(0.5, 1.5);
    layer->bias.uniform_(-0.5, 0.5);
  }
  const ::torch::Tensor x = ::torch::randn({4, 3, 4}) * 3 + 1;
  const std::vector<std::uint8_t> mask{1, 0, 1, 1};
  const auto loss_of = [&](const ::torch::Tensor& input) { return ::torch::sin(layer(input)).sum(); };
  const auto reference =
      brute_force_clipped_sum(*layer, mask, 0.3, [&](std::int64_t i) { return loss_of(x.slice(0, i, i + 1)); });
  layer->set_private(true);
  const auto ghost = ghost_clipped_sum(*layer, mask, 0.3, loss_of(x));
  expect_close(ghost, reference);
}

// For layers whose examples sum over many positions (convolutions): the norms dpsgd clips by are upper
// bounds that include the float rounding of what is added (docs/privacy.md), so an example above the
// clip norm is scaled by up to ~1e-4 less than exact arithmetic would. Hence three checks: the norms
// bound the autograd ones from above and stay within 1e-4 of them; without clipping (C = 1e6) the sums
// equal autograd's to 1e-5; with clipping, to 1e-4.
template <typename ExampleLoss, typename BatchLoss>
void expect_matches_autograd(::torch::nn::Module& model, const std::vector<std::uint8_t>& mask, double clip,
                             ExampleLoss&& example_loss, BatchLoss&& batch_loss) {
  std::vector<double> exact, bound;
  for (const double c : {1e6, clip}) {
    set_private(model, false);
    const auto reference = brute_force_clipped_sum(model, mask, c, example_loss, &exact);
    set_private(model, true);
    const auto ghost = ghost_clipped_sum(model, mask, c, batch_loss(), &bound);
    expect_close(ghost, reference, c == clip ? 1e-4 : 1e-5);
  }
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == 0) continue;
    EXPECT_GE(bound[i], exact[i] * (1.0 - 1e-6)) << "slot " << i;
    EXPECT_LE(bound[i], exact[i] * (1.0 + 1e-4)) << "slot " << i;
  }
  set_private(model, false);
}

// Every option the layer accepts: stride, numeric and "same"/"valid" padding, dilation, with and without
// bias, rectangular kernels; then bias-only (the weight frozen, DP-BiTFiT).
TEST(TorchLayers, Conv2dMatchesPerExampleAutograd) {
  ::torch::manual_seed(8);
  std::vector<::torch::nn::Conv2dOptions> cases{
      ::torch::nn::Conv2dOptions(2, 3, 3),
      ::torch::nn::Conv2dOptions(2, 3, 4).stride(2).padding(1).bias(false),
      ::torch::nn::Conv2dOptions(2, 3, {3, 2}).stride({1, 2}).padding({2, 0}).dilation({2, 1}),
      ::torch::nn::Conv2dOptions(2, 3, 3).padding(::torch::kSame),
      ::torch::nn::Conv2dOptions(2, 3, 5).padding(::torch::kValid).stride(3),
  };
  const ::torch::Tensor x = ::torch::randn({4, 2, 9, 8});
  const std::vector<std::uint8_t> mask{1, 1, 0, 1};
  for (std::size_t c = 0; c < cases.size(); ++c) {
    for (const bool bias_only : {false, true}) {
      SCOPED_TRACE("case " + std::to_string(c) + (bias_only ? ", bias only" : ""));
      torch::Conv2d layer(cases[c]);
      if (bias_only && !layer->bias.defined()) continue;
      if (bias_only) layer->weight.set_requires_grad(false);
      const auto loss_of = [&](const ::torch::Tensor& input) { return ::torch::tanh(layer(input)).pow(2).sum(); };
      ::torch::nn::Conv2d plain(cases[c]);
      EXPECT_EQ(plain->weight.sizes(), layer->weight.sizes());  // a change of type, same parameters
      expect_matches_autograd(
          *layer, mask, 0.7, [&](std::int64_t i) { return loss_of(x.slice(0, i, i + 1)); }, [&] { return loss_of(x); });
    }
  }
}

// The native example's tanh CNN in LibTorch: convolutions, max pooling, a linear head.
TEST(TorchLayers, SmallCnnMatchesPerExampleAutograd) {
  ::torch::manual_seed(9);
  torch::Conv2d conv1(::torch::nn::Conv2dOptions(1, 4, 8).stride(2).padding(3));
  torch::Conv2d conv2(::torch::nn::Conv2dOptions(4, 6, 4).stride(2));
  torch::Linear head(6 * 4 * 4, 3);
  ::torch::nn::Sequential model(
      conv1, ::torch::nn::Functional(::torch::tanh), ::torch::nn::MaxPool2d(::torch::nn::MaxPool2dOptions(2).stride(1)),
      conv2, ::torch::nn::Functional(::torch::tanh), ::torch::nn::MaxPool2d(::torch::nn::MaxPool2dOptions(2).stride(1)),
      ::torch::nn::Flatten(), head);
  const ::torch::Tensor x = ::torch::randn({5, 1, 28, 28});
  const ::torch::Tensor y = ::torch::tensor({0, 2, 1, 1, 0}, ::torch::kInt64);
  const std::vector<std::uint8_t> mask{1, 0, 1, 1, 1};
  const auto loss_of = [&](const ::torch::Tensor& input, const ::torch::Tensor& labels) {
    return F::cross_entropy(model->forward(input), labels, F::CrossEntropyFuncOptions().reduction(::torch::kSum));
  };
  expect_matches_autograd(
      *model, mask, 0.1, [&](std::int64_t i) { return loss_of(x.slice(0, i, i + 1), y.slice(0, i, i + 1)); },
      [&] { return loss_of(x, y); });
}

TEST(TorchLayers, Conv2dRefusesWhatItCannotClip) {
  EXPECT_THROW(torch::Conv2d(::torch::nn::Conv2dOptions(2, 4, 3).groups(2)), InvalidArgument);
  EXPECT_THROW(torch::Conv2d(::torch::nn::Conv2dOptions(2, 4, 3).padding(1).padding_mode(::torch::kReflect)),
               InvalidArgument);
  EXPECT_THROW(torch::Conv2d(::torch::nn::Conv2dOptions(2, 4, 4).padding(::torch::kSame)), InvalidArgument);
  // A record whose batch is not the capacity asked for.
  torch::Conv2d layer(1, 2, 3);
  layer->set_private(true);
  layer(::torch::randn({3, 1, 5, 5})).sum().backward();
  SquaredNorms norms = SquaredNorms::Zero(4, 1);
  EXPECT_THROW(layer->accumulate_squared_norms(4, norms), InvalidArgument);
}

// The composite model, all parameters trainable, then bias-only (DP-BiTFiT: every weight frozen).
TEST(TorchLayers, TinyTransformerMatchesPerExampleAutograd) {
  ::torch::manual_seed(4);
  TinyLm model(7, 8);
  const ::torch::Tensor tokens = ::torch::randint(0, 7, {5, 6}, ::torch::kInt64);
  const std::vector<std::uint8_t> mask{1, 1, 0, 1, 1};
  for (const bool bias_only : {false, true}) {
    SCOPED_TRACE(bias_only ? "bias only" : "all parameters");
    if (bias_only) {
      for (auto& p : model->named_parameters()) {
        if (p.key().find("bias") == std::string::npos) p.value().set_requires_grad(false);
      }
    }
    const auto reference = brute_force_clipped_sum(
        *model, mask, 1.0, [&](std::int64_t i) { return lm_loss(model, tokens.slice(0, i, i + 1)); });
    set_private(*model, true);
    const auto ghost = ghost_clipped_sum(*model, mask, 1.0, lm_loss(model, tokens));
    set_private(*model, false);
    expect_close(ghost, reference);
  }
}

std::string fresh_run_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("dpsgd_torch_test_" + name + "_" + std::to_string(std::random_device{}()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

TrainingRunConfig run_config(const std::string& name, double sigma) {
  TrainingRunConfig config;
  config.directory = fresh_run_dir(name);
  config.dataset_size = 40;
  config.sampling_rate = 0.2;
  config.capacity = 30;  // Pr[Binomial(41, 0.2) > 30] ~ 1e-12: room in delta = 1e-5
  config.noise_multiplier = sigma;
  config.clip = ClipConfig::flat(1.0);
  config.steps = 3;
  config.seed = 12345;
  return config;
}

// With sigma = 0 the update is exactly -lr * (clipped sum) / (q N); the ledger charges the step; with
// sigma > 0 noise moves the parameters off that value (the control: the comparison can fail).
TEST(TorchPrivateOptimizer, OneStepIsTheClippedSumOverTheExpectedBatch) {
  for (const double sigma : {0.0, 1.0}) {
    ::torch::manual_seed(5);
    TinyLm model(7, 8);
    const ::torch::Tensor data = ::torch::randint(0, 7, {40, 6}, ::torch::kInt64);
    ::torch::optim::SGD sgd(model->parameters(), ::torch::optim::SGDOptions(0.5));
    TrainingRunConfig config = run_config("step", sigma);
    const std::string dir = config.directory;
    std::vector<::torch::Tensor> before;
    for (const auto& p : model->parameters()) before.push_back(p.detach().clone().to(::torch::kFloat64));
    torch::PrivateOptimizer optimizer(*model, sgd, config);
    const Batch batch = optimizer.next_batch();
    const ::torch::Tensor tokens = torch::gather_rows(data, batch);
    set_private(*model, false);
    const auto reference = brute_force_clipped_sum(
        *model, batch.mask, 1.0, [&](std::int64_t i) { return lm_loss(model, tokens.slice(0, i, i + 1)); });
    set_private(*model, true);
    lm_loss(model, tokens).backward();
    optimizer.step(batch);
    EXPECT_EQ(optimizer.run().ledger().next_step(), 1u);  // charged (sigma 0: epsilon unbounded)
    EXPECT_EQ(std::isinf(optimizer.epsilon(1e-5)), sigma == 0.0);
    const auto params = model->parameters();
    double worst = 0.0, scale = 0.0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      const ::torch::Tensor expected = before[k] - 0.5 * reference[k] / (0.2 * 40);
      worst = std::max(worst, (params[k].to(::torch::kFloat64) - expected).abs().max().item<double>());
      scale = std::max(scale, (0.5 * reference[k] / 8.0).abs().max().item<double>());
    }
    if (sigma == 0.0) {
      EXPECT_LE(worst / scale, 1e-5);
    } else {
      EXPECT_GT(worst / scale, 1e-2);
    }
    std::filesystem::remove_all(dir);
  }
}

// A run checkpointed after two Adam steps and resumed from a copy of its directory takes the third step
// exactly as the uninterrupted run did: parameters and Adam's moments are restored. The control: the
// same resume with the restored moments thrown away lands elsewhere.
TEST(TorchPrivateOptimizer, ResumeRestoresTheWrappedOptimizersState) {
  const auto make_model = [] {
    ::torch::manual_seed(10);
    return torch::Linear(4, 3);
  };
  const ::torch::Tensor data = ::torch::randn({40, 4});
  const auto pass = [&](torch::Linear& model, const Batch& batch) {
    ::torch::tanh(model(torch::gather_rows(data, batch))).pow(2).sum().backward();
  };
  TrainingRunConfig config = run_config("adam", 0.5);
  const std::string copy = config.directory + "_copy", control = config.directory + "_control";
  ::torch::Tensor uninterrupted;
  {
    torch::Linear model = make_model();
    ::torch::optim::Adam adam(model->parameters(), ::torch::optim::AdamOptions(0.05));
    torch::PrivateOptimizer optimizer(*model, adam, config);
    for (int k = 0; k < 2; ++k) {
      const Batch batch = optimizer.next_batch();
      pass(model, batch);
      optimizer.step(batch);
    }
    optimizer.checkpoint();
    std::filesystem::copy(config.directory, copy);
    std::filesystem::copy(config.directory, control);
    const Batch batch = optimizer.next_batch();
    pass(model, batch);
    optimizer.step(batch);
    uninterrupted = model->weight.detach().clone();
  }
  for (const bool keep_state : {true, false}) {
    torch::Linear model = make_model();
    ::torch::optim::Adam adam(model->parameters(), ::torch::optim::AdamOptions(0.05));
    TrainingRunConfig resumed = config;
    resumed.directory = keep_state ? copy : control;
    resumed.start = TrainingRunConfig::Start::kResume;
    resumed.seed.reset();
    torch::PrivateOptimizer optimizer(*model, adam, resumed);
    ASSERT_EQ(optimizer.run().next_step(), 2u);
    if (!keep_state) adam.state().clear();
    const Batch batch = optimizer.next_batch();
    pass(model, batch);
    optimizer.step(batch);
    const double difference = (model->weight - uninterrupted).abs().max().item<double>();
    if (keep_state) {
      EXPECT_EQ(difference, 0.0);
    } else {
      EXPECT_GT(difference, 1e-4);
    }
  }
  // A checkpoint whose optimiser state file is gone is refused, not resumed with fresh moments.
  for (const auto& entry : std::filesystem::directory_iterator(copy)) {
    if (entry.path().extension() == ".pt") std::filesystem::remove(entry.path());
  }
  torch::Linear model = make_model();
  ::torch::optim::Adam adam(model->parameters(), ::torch::optim::AdamOptions(0.05));
  TrainingRunConfig resumed = config;
  resumed.directory = copy;
  resumed.start = TrainingRunConfig::Start::kResume;
  resumed.seed.reset();
  EXPECT_THROW(torch::PrivateOptimizer(*model, adam, resumed), FormatError);
  for (const auto& dir : {config.directory, copy, control}) std::filesystem::remove_all(dir);
}

// A torch::data dataset over two tensors, as a user's own dataset would be.
class TensorPairs : public ::torch::data::datasets::Dataset<TensorPairs> {
 public:
  TensorPairs(::torch::Tensor x, ::torch::Tensor y) : x_(std::move(x)), y_(std::move(y)) {}
  ::torch::data::Example<> get(std::size_t index) override {
    return {x_[static_cast<std::int64_t>(index)], y_[static_cast<std::int64_t>(index)]};
  }
  ::torch::optional<std::size_t> size() const override { return static_cast<std::size_t>(x_.size(0)); }

 private:
  ::torch::Tensor x_, y_;
};

// Batches from a dataset hold the same slots as gather_rows over its tensors (padding zeros); a
// dataset of another size than the batch's is refused.
TEST(TorchBatches, DatasetSlotsMatchTensorRows) {
  ::torch::manual_seed(11);
  const ::torch::Tensor x = ::torch::randn({40, 2, 3});
  const ::torch::Tensor y = ::torch::randint(0, 5, {40}, ::torch::kInt64);
  TensorPairs dataset(x, y);
  torch::Linear layer(3, 2);
  ::torch::optim::SGD sgd(layer->parameters(), ::torch::optim::SGDOptions(0.1));
  torch::PrivateOptimizer optimizer(*layer, sgd, run_config("dataset", 1.0));
  const Batch batch = optimizer.next_batch();
  ASSERT_LT(batch.real_size, batch.capacity());  // padding present, so zero slots are checked
  const ::torch::data::Example<> gathered = torch::gather_examples(dataset, batch);
  EXPECT_TRUE(::torch::equal(gathered.data, torch::gather_rows(x, batch)));
  EXPECT_TRUE(::torch::equal(gathered.target, torch::gather_rows(y, batch)));
  TensorPairs smaller(x.slice(0, 0, 30), y.slice(0, 0, 30));
  EXPECT_THROW(torch::gather_examples(smaller, batch), InvalidArgument);
  std::filesystem::remove_all(optimizer.run().directory());
}

TEST(TorchPrivateOptimizer, RefusesWhatItCannotClip) {
  ::torch::manual_seed(6);
  // A trainable parameter in a plain torch::nn::Linear: named in the message.
  ::torch::nn::Sequential mixed(torch::Linear(3, 3), ::torch::nn::Linear(3, 2));
  ::torch::optim::SGD sgd_mixed(mixed->parameters(), ::torch::optim::SGDOptions(0.1));
  try {
    torch::PrivateOptimizer optimizer(*mixed, sgd_mixed, run_config("mixed", 1.0));
    ADD_FAILURE() << "a plain torch::nn::Linear was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("model.1"), std::string::npos) << e.what();
  }
  // Frozen, the same module is fine.
  for (auto& p : mixed[1]->parameters()) p.set_requires_grad(false);
  ::torch::optim::SGD sgd_frozen(trainable(*mixed), ::torch::optim::SGDOptions(0.1));
  EXPECT_NO_THROW(torch::PrivateOptimizer(*mixed, sgd_frozen, run_config("frozen", 1.0)));
  // Batch normalisation mixes the examples of a batch: refused even with its parameters frozen.
  ::torch::nn::Sequential normed(torch::Linear(3, 3), ::torch::nn::BatchNorm1d(3));
  for (auto& p : normed[1]->parameters()) p.set_requires_grad(false);
  ::torch::optim::SGD sgd_normed(trainable(*normed), ::torch::optim::SGDOptions(0.1));
  try {
    torch::PrivateOptimizer optimizer(*normed, sgd_normed, run_config("batchnorm", 1.0));
    ADD_FAILURE() << "BatchNorm1d was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("mixes the examples"), std::string::npos) << e.what();
  }
  // An optimiser over a parameter the model does not train.
  torch::Linear layer(3, 2);
  ::torch::Tensor stray = ::torch::zeros({2}, ::torch::requires_grad());
  std::vector<::torch::Tensor> with_stray = layer->parameters();
  with_stray.push_back(stray);
  ::torch::optim::SGD sgd_stray(with_stray, ::torch::optim::SGDOptions(0.1));
  EXPECT_THROW(torch::PrivateOptimizer(*layer, sgd_stray, run_config("stray", 1.0)), InvalidArgument);
}

TEST(TorchPrivateOptimizer, RefusesIncompleteOrMisshapenRecords) {
  ::torch::manual_seed(7);
  torch::Linear layer(3, 2);
  ::torch::optim::SGD sgd(layer->parameters(), ::torch::optim::SGDOptions(0.1));
  torch::PrivateOptimizer optimizer(*layer, sgd, run_config("records", 1.0));
  const Batch batch = optimizer.next_batch();
  // No forward pass: nothing recorded, nothing charged.
  EXPECT_THROW(optimizer.step(batch), InvalidArgument);
  EXPECT_EQ(optimizer.run().ledger().next_step(), 0u);
  // A layer used twice in one pass would hide one use from its norm.
  const ::torch::Tensor x = ::torch::randn({batch.capacity(), 3});
  const ::torch::Tensor y = layer(x);
  EXPECT_THROW(layer(x), InvalidArgument);
  optimizer.zero_grad();
  // Sequence-first input ([T, B, d]): its first dimension is not the batch.
  layer(::torch::randn({4, batch.capacity(), 3})).sum().backward();
  EXPECT_THROW(optimizer.step(batch), InvalidArgument);
  EXPECT_EQ(optimizer.run().ledger().next_step(), 0u);
  std::filesystem::remove_all(optimizer.run().directory());
}

}  // namespace
}  // namespace dpsgd
