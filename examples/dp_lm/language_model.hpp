// LanguageModel: the example's decoder-only transformer behind a small interface, so that the nn
// templates compile in their own translation unit (language_model.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/nn/decoder_lm.hpp"
#include "fortunes.hpp"

namespace dp_lm {

class LanguageModel {
 public:
  LanguageModel(const dpsgd::nn::DecoderLMConfig& config, std::uint64_t init_seed);
  ~LanguageModel();
  LanguageModel(const LanguageModel&) = delete;
  LanguageModel& operator=(const LanguageModel&) = delete;

  const dpsgd::nn::DecoderLMConfig& config() const;
  std::int64_t num_parameters() const;
  std::span<float> parameters();
  void set_trainable(dpsgd::nn::Trainable trainable);
  // The runs of the parameter buffer that train, each a tensor of its own for the step's noise.
  std::vector<dpsgd::nn::ParameterRange> trainable_ranges() const;
  std::int64_t num_trainable() const;

  // gradient += the sum over the batch's real slots of each sequence's gradient, clipped to `clip`
  // (private training) or plain when clip is null (non-private baselines, public pretraining).
  void add_batch_gradient(const Sequences& batch, std::span<const std::uint8_t> slot_mask,
                          const dpsgd::ClipConfig* clip, std::span<float> gradient);

  // Mean next-character loss in bits over all positions of the first `count` cookies (held-out data:
  // no privacy cost to print it).
  double bits_per_character(const std::vector<std::string>& cookies, std::int64_t count);

  // The model file of --save-model / --pretrained: its shape and parameters, in JSON.
  void save(const std::string& path) const;
  // Loads parameters saved by save(); throws dpsgd::FormatError if the file is unreadable or the shape differs.
  void load(const std::string& path);

 private:
  std::unique_ptr<dpsgd::nn::DecoderLM<float>> model_;
};

}  // namespace dp_lm
