// dpsgd::torch::PrivateOptimizer: DP-SGD around any torch::optim::Optimizer, on a dpsgd::TrainingRun.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/batch.hpp"
#include "dpsgd/torch/batch_tensors.hpp"
#include "dpsgd/torch/ghost_clippable.hpp"

namespace dpsgd::torch {

// One private training run of a LibTorch model. Per step:
//   const dpsgd::Batch batch = opt.next_batch();        // Poisson, fixed capacity, padding masked
//   loss = per_example_loss(model->forward(gather_rows(x, batch)), gather_rows(y, batch)).sum();
//   loss.backward();                                   // reduction: sum over the batch slots
//   opt.step(batch);
// step() computes every example's gradient norm from the layers' records, clips, writes the clipped
// sums into each trainable parameter's grad(), and hands them to the run: the ledger records the
// step (before anything is released), each tensor gets noise from its own stream, the sums are
// divided by the expected batch size q N; then the wrapped optimiser steps. Padding slots are
// dropped whatever their loss. The model, the optimiser and this object live in one thread.
class PrivateOptimizer {
 public:
  // Refuses (InvalidArgument), naming the module, a trainable parameter outside a dpsgd::torch layer;
  // refuses an optimiser that holds a parameter other than the model's trainable ones, parameters that
  // are not float32 CPU tensors, and per-group clipping (flat clipping only). Puts the layers in private
  // mode. A resumed run's parameters are copied into the model and the wrapped optimiser's state
  // (momentum, Adam's moments) into the optimiser; a state file that is missing or does not load
  // (another optimiser type) is refused (FormatError).
  PrivateOptimizer(::torch::nn::Module& model, ::torch::optim::Optimizer& optimizer, TrainingRunConfig config);
  ~PrivateOptimizer();
  PrivateOptimizer(const PrivateOptimizer&) = delete;
  PrivateOptimizer& operator=(const PrivateOptimizer&) = delete;

  Batch next_batch() const { return run_->next_batch(); }
  // After loss.backward() over `batch`: the private update. Throws InvalidArgument, before anything
  // is recorded or released, if a layer holding trainable parameters has no record of this pass, if
  // a layer's input does not have the batch's capacity as its first dimension, or if the set of
  // trainable parameters changed since construction.
  void step(const Batch& batch);
  // Drops the layers' records and the parameters' gradients (after an abandoned pass).
  void zero_grad();
  // Saves the trainable parameters (in model order) with the run's checkpoint, and the wrapped
  // optimiser's state (torch::optim's own serialisation) in torch_optimizer-<step>.pt beside it, named
  // by the checkpoint: a resume continues exactly, moments included. `extra` (program data, returned
  // by run().restored_extra() on resume) must not use the key "torch_optimizer".
  void checkpoint(const nlohmann::json& extra = nlohmann::json::object());

  double epsilon(double delta) const { return run_->epsilon(delta); }
  TrainingRun& run() { return *run_; }
  const TrainingRun& run() const { return *run_; }
  bool finished() const { return run_->finished(); }

 private:
  static constexpr const char* kOptimizerKey = "torch_optimizer";

  std::vector<::torch::Tensor> trainable_parameters() const;
  void restore_optimizer_state();
  void remove_other_optimizer_states(const std::string& keep) const;

  ::torch::nn::Module& model_;
  ::torch::optim::Optimizer& optimizer_;
  std::vector<GhostClippable*> layers_;
  std::vector<::torch::Tensor> parameters_;
  std::unique_ptr<TrainingRun> run_;
};

}  // namespace dpsgd::torch
