// One LibTorch training step per process, JSON out: the non-private step of a model built from
// torch::nn layers, or the dpsgd::torch DP step of the same model built from dpsgd::torch layers
// (benchmarks/compare_torch.py runs it beside PyTorch and Opacus on the same shapes).
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "dpsgd/torch/embedding.hpp"
#include "dpsgd/torch/layer_norm.hpp"
#include "dpsgd/torch/linear.hpp"
#include "dpsgd/torch/private_optimizer.hpp"

namespace {

namespace F = torch::nn::functional;

// The layer types of the two variants: plain LibTorch, and dpsgd::torch's (same options and parameters).
struct PlainLayers {
  using Linear = torch::nn::Linear;
  using Embedding = torch::nn::Embedding;
  using LayerNorm = torch::nn::LayerNorm;
};
struct PrivateLayers {
  using Linear = dpsgd::torch::Linear;
  using Embedding = dpsgd::torch::Embedding;
  using LayerNorm = dpsgd::torch::LayerNorm;
};

// The MLPs of docs/benchmarks.md: Linear layers with ReLU between them.
template <typename Layers>
struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const std::vector<std::int64_t>& sizes) {
    for (std::size_t k = 0; k + 1 < sizes.size(); ++k) {
      layers.push_back(register_module("fc" + std::to_string(k), typename Layers::Linear(sizes[k], sizes[k + 1])));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (std::size_t k = 0; k < layers.size(); ++k) {
      x = layers[k](x);
      if (k + 1 < layers.size()) x = torch::relu(x);
    }
    return x;
  }
  std::vector<typename Layers::Linear> layers;
};

// A pre-norm decoder block on byte tokens: embedding, LayerNorm, one-head causal self-attention of
// Linear layers, LayerNorm, GELU MLP (4 d), residuals, LM head. The same in compare_torch.py.
template <typename Layers>
struct BlockImpl : torch::nn::Module {
  BlockImpl(std::int64_t vocab, std::int64_t d)
      : embed(register_module("embed", typename Layers::Embedding(vocab, d))),
        norm1(register_module("norm1", typename Layers::LayerNorm(torch::nn::LayerNormOptions({d})))),
        q(register_module("q", typename Layers::Linear(d, d))),
        k(register_module("k", typename Layers::Linear(d, d))),
        v(register_module("v", typename Layers::Linear(d, d))),
        o(register_module("o", typename Layers::Linear(d, d))),
        norm2(register_module("norm2", typename Layers::LayerNorm(torch::nn::LayerNormOptions({d})))),
        up(register_module("up", typename Layers::Linear(d, 4 * d))),
        down(register_module("down", typename Layers::Linear(4 * d, d))),
        head(register_module("head", typename Layers::Linear(d, vocab))) {}
  torch::Tensor forward(const torch::Tensor& tokens) {
    torch::Tensor x = embed(tokens);
    const torch::Tensor h = norm1(x);
    const std::int64_t t = tokens.size(1);
    const torch::Tensor scores = torch::matmul(q(h), k(h).transpose(1, 2)) / std::sqrt(double(h.size(2)));
    const torch::Tensor causal = torch::ones({t, t}, torch::kBool).triu(1);
    x = x + o(torch::matmul(torch::softmax(scores.masked_fill(causal, -1e9), -1), v(h)));
    x = x + down(torch::gelu(up(norm2(x))));
    return head(x);
  }
  typename Layers::Embedding embed;
  typename Layers::LayerNorm norm1;
  typename Layers::Linear q, k, v, o;
  typename Layers::LayerNorm norm2;
  typename Layers::Linear up, down, head;
};

struct Options {
  std::string model = "mlp", mode = "dp";
  std::int64_t batch = 256, steps = 10, warmup = 2, seq = 64, vocab = 256, width = 128;
  int threads = 1;
};

std::vector<std::int64_t> mlp_sizes(const std::string& model) {
  if (model == "mlp") return {784, 512, 256, 10};
  if (model == "mlp-wide") return {3072, 1024, 1024, 10};
  throw std::invalid_argument("--model must be mlp, mlp-wide or block, got " + model);
}

// Inputs and the summed loss of one batch, for either model kind.
struct Workload {
  torch::Tensor x, y;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> loss;
};

template <typename Layers>
std::pair<std::shared_ptr<torch::nn::Module>, Workload> build(const Options& o) {
  torch::manual_seed(0);
  Workload w;
  if (o.model == "block") {
    auto model = std::make_shared<BlockImpl<Layers>>(o.vocab, o.width);
    w.x = torch::randint(0, o.vocab, {o.batch, o.seq}, torch::kInt64);
    w.y = torch::randint(0, o.vocab, {o.batch, o.seq}, torch::kInt64);
    w.loss = [model, vocab = o.vocab](const torch::Tensor& x, const torch::Tensor& y) {
      return F::cross_entropy(model->forward(x).reshape({-1, vocab}), y.reshape({-1}),
                              F::CrossEntropyFuncOptions().reduction(torch::kSum));
    };
    return {model, w};
  }
  const std::vector<std::int64_t> sizes = mlp_sizes(o.model);
  auto model = std::make_shared<MlpImpl<Layers>>(sizes);
  w.x = torch::rand({o.batch, sizes.front()}) * 2 - 1;
  w.y = torch::arange(o.batch, torch::kInt64) % sizes.back();
  w.loss = [model](const torch::Tensor& x, const torch::Tensor& y) {
    return F::cross_entropy(model->forward(x), y, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  };
  return {model, w};
}

// Median and minimum of the timed steps (ms), after the warm-up steps.
template <typename Step>
std::pair<double, double> time_steps(const Options& o, Step&& step) {
  std::vector<double> times;
  for (std::int64_t s = 0; s < o.warmup + o.steps; ++s) {
    const auto start = std::chrono::steady_clock::now();
    step();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (s >= o.warmup) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

std::pair<double, double> nonprivate(const Options& o) {
  auto [model, w] = build<PlainLayers>(o);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01));
  return time_steps(o, [&] {
    sgd.zero_grad();
    w.loss(w.x, w.y).backward();
    sgd.step();
  });
}

// The whole DP step a user runs: Poisson batch of fixed capacity (= --batch slots), gather, forward,
// backward, norms, clipping, the ledger's write-ahead record, noise, SGD.
std::pair<double, double> dp(const Options& o) {
  auto [model, w] = build<PrivateLayers>(o);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01));
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("bench_torch_step_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  dpsgd::TrainingRunConfig config;
  config.directory = dir;
  config.dataset_size = o.batch;  // the batch's examples are the data set: q = 0.9, capacity = all of it
  config.sampling_rate = 0.9;
  config.capacity = o.batch;
  config.noise_multiplier = 1.0;
  config.clip = dpsgd::ClipConfig::flat(1.0);
  config.steps = o.warmup + o.steps;
  {
    dpsgd::torch::PrivateOptimizer optimizer(*model, sgd, config);
    const auto result = time_steps(o, [&] {
      optimizer.zero_grad();
      const dpsgd::Batch batch = optimizer.next_batch();
      w.loss(dpsgd::torch::gather_rows(w.x, batch), dpsgd::torch::gather_rows(w.y, batch)).backward();
      optimizer.step(batch);
    });
    std::filesystem::remove_all(dir);
    return result;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"one LibTorch training step, non-private or through dpsgd::torch; JSON out"};
  app.add_option("--model", o.model, "mlp, mlp-wide or block")->check(CLI::IsMember({"mlp", "mlp-wide", "block"}));
  app.add_option("--mode", o.mode, "nonprivate or dp")->check(CLI::IsMember({"nonprivate", "dp"}));
  app.add_option("--batch", o.batch, "batch slots")->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::Range(0, 1000));
  app.add_option("--threads", o.threads, "LibTorch threads")->check(CLI::Range(1, 256));
  app.add_option("--seq", o.seq, "block: tokens per example")->check(CLI::Range(1, 4096));
  app.add_option("--width", o.width, "block: model width d")->check(CLI::Range(1, 4096));
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(o.threads);
  const auto [median, minimum] = o.mode == "dp" ? dp(o) : nonprivate(o);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const nlohmann::json out = {{"library", o.mode == "dp" ? "dpsgd-torch-dp" : "libtorch-nonprivate"},
                              {"step_ms", median},
                              {"min_step_ms", minimum},
                              {"samples_per_s", 1000.0 * static_cast<double>(o.batch) / median},
                              {"peak_rss_mib", static_cast<double>(usage.ru_maxrss) / 1024.0},
                              {"threads", torch::get_num_threads()},
                              {"libtorch", TORCH_VERSION}};
  std::cout << out.dump() << std::endl;
  return 0;
}
