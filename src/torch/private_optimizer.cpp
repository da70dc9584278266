// PrivateOptimizer: the layers' clipping, the run's ledger and noise, then the wrapped torch optimiser.
#include "dpsgd/torch/private_optimizer.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <utility>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "tensor_views.hpp"

namespace dpsgd::torch {
namespace {

// The run's optimiser slot: the run adds the noise and divides in place (the gradient spans are the
// parameters' grad() tensors), and the update itself is the wrapped torch optimiser's, after the step.
class ReleaseToTorch final : public Optimizer<float> {
 public:
  std::string name() const override { return "torch"; }

 protected:
  void apply(std::span<float> /*params*/, std::span<const float> /*gradient*/) override {}
  void apply_at(std::span<float> /*params*/, std::span<const float> /*gradient*/, std::size_t /*offset*/) override {}
};

// Every trainable parameter lives in a layer that can clip it; returns those layers.
std::vector<GhostClippable*> clippable_layers(::torch::nn::Module& model) {
  std::vector<GhostClippable*> layers;
  for (const auto& item : model.named_modules("model")) {
    // Batch normalisation in training mode makes each example's output depend on the others, so no
    // per-example gradient bounds what one example changes: refused even when frozen.
    DPSGD_CHECK_ARG(item.value()->name().find("BatchNorm") == std::string::npos,
                    "module '" << item.key() << "' (" << item.value()->name()
                               << ") mixes the examples of a batch, which DP-SGD's per-example clipping cannot bound: "
                                  "use LayerNorm (dpsgd::torch::LayerNorm) instead");
    if (auto* layer = dynamic_cast<GhostClippable*>(item.value().get())) {
      layers.push_back(layer);
      continue;
    }
    for (const auto& parameter : item.value()->named_parameters(/*recurse=*/false)) {
      DPSGD_CHECK_ARG(
          !parameter.value().requires_grad(),
          "module '" << item.key() << "' (" << item.value()->name() << ") has the trainable parameter '"
                     << parameter.key()
                     << "', which dpsgd::torch cannot clip: build the module from dpsgd::torch layers "
                        "(Linear, Conv2d, Embedding, LayerNorm) or freeze the parameter (requires_grad false)");
    }
  }
  return layers;
}

void check_optimizer(::torch::optim::Optimizer& optimizer, const std::vector<::torch::Tensor>& trainable) {
  std::set<const void*> ours;
  for (const auto& p : trainable) ours.insert(p.unsafeGetTensorImpl());
  std::size_t k = 0;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      DPSGD_CHECK_ARG(ours.count(p.unsafeGetTensorImpl()) == 1,
                      "optimizer parameter " << k << " " << p.sizes()
                                             << " is not a trainable parameter of the model: build the optimiser "
                                                "over the model's trainable parameters only");
      ++k;
    }
  }
}

}  // namespace

PrivateOptimizer::PrivateOptimizer(::torch::nn::Module& model, ::torch::optim::Optimizer& optimizer,
                                   TrainingRunConfig config)
    : model_(model), optimizer_(optimizer) {
  DPSGD_CHECK_ARG(config.clip.num_groups() == 1, "config.clip must be flat (one clip norm) for dpsgd::torch, got "
                                                     << config.clip.num_groups() << " groups");
  layers_ = clippable_layers(model_);
  parameters_ = trainable_parameters();
  DPSGD_CHECK_ARG(!parameters_.empty(), "the model has no trainable parameter");
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    const ::torch::Tensor& p = parameters_[k];
    DPSGD_CHECK_ARG(p.scalar_type() == ::torch::kFloat32 && p.device().is_cpu() && p.is_contiguous(),
                    "trainable parameter " << k << " must be a contiguous float32 CPU tensor, got " << p.toString()
                                           << " (CUDA tensors are not supported yet)");
  }
  check_optimizer(optimizer_, parameters_);
  run_ = std::make_unique<TrainingRun>(std::move(config), std::make_unique<ReleaseToTorch>());
  const std::vector<float>& restored = run_->restored_parameters();
  if (!restored.empty()) {
    std::size_t total = 0;
    for (const auto& p : parameters_) total += static_cast<std::size_t>(p.numel());
    if (restored.size() != total) {
      throw FormatError("checkpoint refused: it holds " + std::to_string(restored.size()) +
                        " parameters, the model's trainable ones are " + std::to_string(total));
    }
    const ::torch::NoGradGuard no_grad;
    std::size_t offset = 0;
    for (auto& p : parameters_) {
      std::copy_n(restored.begin() + static_cast<std::ptrdiff_t>(offset), p.numel(), p.data_ptr<float>());
      offset += static_cast<std::size_t>(p.numel());
    }
  }
  restore_optimizer_state();
  for (GhostClippable* layer : layers_) layer->set_private(true);
}

PrivateOptimizer::~PrivateOptimizer() {
  for (GhostClippable* layer : layers_) layer->set_private(false);
}

std::vector<::torch::Tensor> PrivateOptimizer::trainable_parameters() const {
  std::vector<::torch::Tensor> result;
  for (const auto& p : model_.parameters()) {
    if (p.requires_grad()) result.push_back(p);
  }
  return result;
}

void PrivateOptimizer::step(const Batch& batch) {
  const std::vector<::torch::Tensor> now = trainable_parameters();
  DPSGD_CHECK_ARG(
      now.size() == parameters_.size() && std::equal(now.begin(), now.end(), parameters_.begin(),
                                                     [](const auto& a, const auto& b) { return a.is_same(b); }),
      "the model's trainable parameters changed since the PrivateOptimizer was built ("
          << parameters_.size() << " then, " << now.size() << " now); build a new one");
  const std::int64_t capacity = batch.capacity();
  SquaredNorms squared_norms = SquaredNorms::Zero(capacity, 1);
  for (const GhostClippable* layer : layers_) layer->accumulate_squared_norms(capacity, squared_norms);
  const ClipFactors factors = compute_clip_factors(squared_norms, batch.mask, run_->config().clip);
  for (GhostClippable* layer : layers_) layer->write_clipped_gradients(capacity, factors.factors);
  std::vector<std::span<float>> params, grads;
  for (auto& p : parameters_) {
    DPSGD_CHECK_ARG(p.grad().defined(), "a trainable parameter " << p.sizes() << " got no clipped gradient");
    params.push_back(views::span_of(p));
    grads.push_back(views::span_of(p.grad()));
  }
  run_->step(params, grads, batch);
  optimizer_.step();
  for (GhostClippable* layer : layers_) layer->clear_record();
}

void PrivateOptimizer::zero_grad() {
  for (GhostClippable* layer : layers_) layer->clear_record();
  optimizer_.zero_grad();
}

void PrivateOptimizer::checkpoint(const nlohmann::json& extra) {
  DPSGD_CHECK_ARG(extra.is_object() && !extra.contains(kOptimizerKey),
                  "extra must be a JSON object without the key '" << kOptimizerKey << "' (dpsgd::torch's own)");
  std::vector<float> flat;
  for (const auto& p : parameters_) {
    const ::torch::Tensor c = p.detach().contiguous();
    flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  // The wrapped optimiser's state goes to its own file, named after the step and written before the
  // checkpoint that names it: a crash between the two leaves the previous checkpoint and its file intact.
  const std::string name = "torch_optimizer-" + std::to_string(run_->next_step()) + ".pt";
  ::torch::serialize::OutputArchive archive;
  optimizer_.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomically(run_->directory() + "/" + name, bytes.str());
  nlohmann::json with_state = extra;
  with_state[kOptimizerKey] = {{"file", name}};
  run_->checkpoint(flat, with_state);
  remove_other_optimizer_states(name);
}

// Older state files are no longer named by any checkpoint.
void PrivateOptimizer::remove_other_optimizer_states(const std::string& keep) const {
  for (const auto& entry : std::filesystem::directory_iterator(run_->directory())) {
    const std::string file = entry.path().filename().string();
    if (file != keep && file.rfind("torch_optimizer-", 0) == 0 && entry.path().extension() == ".pt") {
      std::error_code ignored;  // a file left behind costs disk only; the checkpoint names the right one
      std::filesystem::remove(entry.path(), ignored);
    }
  }
}

void PrivateOptimizer::restore_optimizer_state() {
  const nlohmann::json& extra = run_->restored_extra();
  const auto entry = extra.find(kOptimizerKey);
  if (entry == extra.end()) return;  // a new run, or one stopped before its first checkpoint
  if (!entry->is_object() || !entry->contains("file") || !(*entry)["file"].is_string()) {
    throw FormatError("checkpoint refused: its '" + std::string(kOptimizerKey) + "' entry is malformed");
  }
  const std::string name = (*entry)["file"].get<std::string>();
  if (name.find('/') != std::string::npos || name.rfind("torch_optimizer-", 0) != 0) {
    throw FormatError("checkpoint refused: it names the optimiser state file '" + name + "'");
  }
  const std::string path = run_->directory() + "/" + name;
  try {
    ::torch::serialize::InputArchive archive;
    archive.load_from(path);
    optimizer_.load(archive);
  } catch (const c10::Error& e) {
    throw FormatError(
        "checkpoint refused: the wrapped optimiser's state " + path +
        " could not be loaded (missing, damaged, or saved by another optimiser type): " + e.what_without_backtrace());
  }
}

::torch::Tensor gather_rows(const ::torch::Tensor& data, const Batch& batch) {
  DPSGD_CHECK_ARG(data.dim() >= 1, "data must have a first dimension of examples, got a scalar");
  DPSGD_CHECK_ARG(batch.dataset_size == 0 || data.size(0) == batch.dataset_size,
                  "data holds " << data.size(0) << " examples, the batch was drawn from " << batch.dataset_size);
  std::vector<std::int64_t> rows(batch.indices.size()), padding;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    rows[k] = batch.mask[k] != 0 ? batch.indices[k] : 0;
    if (batch.mask[k] == 0) padding.push_back(static_cast<std::int64_t>(k));
  }
  ::torch::Tensor gathered = data.index_select(0, ::torch::tensor(rows, ::torch::kInt64).to(data.device()));
  // Padding slots hold zeros, not a copy of example 0 (their gradients are dropped either way).
  if (!padding.empty()) gathered.index_fill_(0, ::torch::tensor(padding, ::torch::kInt64).to(data.device()), 0);
  return gathered;
}

::torch::Tensor mask_tensor(const Batch& batch) {
  std::vector<float> mask(batch.mask.begin(), batch.mask.end());
  return ::torch::tensor(mask, ::torch::kFloat32);
}

}  // namespace dpsgd::torch
