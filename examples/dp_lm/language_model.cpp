// The example's language model on dpsgd::nn::DecoderLM: batch gradients, held-out loss, model files.
#include "language_model.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/token_cross_entropy.hpp"

namespace dp_lm {

namespace {

nlohmann::json config_json(const dpsgd::nn::DecoderLMConfig& c) {
  return {{"vocab_size", c.vocab_size}, {"context", c.context}, {"d_model", c.d_model},
          {"heads", c.heads},           {"layers", c.layers},   {"mlp_hidden", c.mlp_hidden}};
}

}  // namespace

LanguageModel::LanguageModel(const dpsgd::nn::DecoderLMConfig& config, std::uint64_t init_seed)
    : model_(std::make_unique<dpsgd::nn::DecoderLM<float>>(config, init_seed)) {}
LanguageModel::~LanguageModel() = default;

const dpsgd::nn::DecoderLMConfig& LanguageModel::config() const { return model_->config(); }
std::int64_t LanguageModel::num_parameters() const { return model_->num_parameters(); }
std::span<float> LanguageModel::parameters() { return model_->parameters(); }
void LanguageModel::set_trainable(dpsgd::nn::Trainable trainable) { model_->set_trainable(trainable); }
std::vector<dpsgd::nn::ParameterRange> LanguageModel::trainable_ranges() const { return model_->trainable_ranges(); }
std::int64_t LanguageModel::num_trainable() const { return model_->num_trainable(); }

void LanguageModel::add_batch_gradient(const Sequences& batch, std::span<const std::uint8_t> slot_mask,
                                       const dpsgd::ClipConfig* clip, std::span<float> gradient) {
  const auto slots = static_cast<std::int64_t>(slot_mask.size());
  const dpsgd::RowMajorMatrix<float> logits = model_->forward(batch.tokens, batch.mask, slots);
  model_->backward(dpsgd::nn::token_cross_entropy<float>(logits, batch.targets, batch.mask, slots).logit_grads);
  if (clip == nullptr) {
    model_->gradient_sum(slot_mask, gradient);
  } else {
    model_->clipped_gradient_sum(slot_mask, *clip, gradient);
  }
}

double LanguageModel::bits_per_character(const std::vector<std::string>& cookies, std::int64_t count) {
  const auto n = std::min<std::int64_t>(count, static_cast<std::int64_t>(cookies.size()));
  constexpr std::int64_t kChunk = 64;
  double nats = 0.0;
  std::int64_t tokens = 0;
  Sequences chunk;
  for (std::int64_t begin = 0; begin < n; begin += kChunk) {
    const std::int64_t size = std::min(kChunk, n - begin);
    std::vector<const std::string*> pointers;
    for (std::int64_t k = begin; k < begin + size; ++k) pointers.push_back(&cookies[static_cast<std::size_t>(k)]);
    encode(pointers, config().context, chunk);
    const dpsgd::RowMajorMatrix<float> logits = model_->forward(chunk.tokens, chunk.mask, size);
    const auto loss = dpsgd::nn::token_cross_entropy<float>(logits, chunk.targets, chunk.mask, size);
    nats += loss.total_loss;
    tokens += loss.num_tokens;
  }
  return nats / (static_cast<double>(std::max<std::int64_t>(1, tokens)) * std::log(2.0));
}

void LanguageModel::save(const std::string& path) const {
  const std::span<const float> params = std::as_const(*model_).parameters();
  const nlohmann::json file = {{"format", "dpsgd-dp-lm-model-1"},
                               {"config", config_json(config())},
                               {"parameters", std::vector<float>(params.begin(), params.end())}};
  dpsgd::write_file_atomically(path, file.dump() + "\n");
}

void LanguageModel::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw dpsgd::FormatError("cannot read the model file " + path);
  nlohmann::json file;
  try {
    file = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw dpsgd::FormatError(path + " is not a model file: " + e.what());
  }
  if (file.value("format", "") != "dpsgd-dp-lm-model-1" || !file.contains("parameters"))
    throw dpsgd::FormatError(path + " is not a dp_lm model file");
  if (file["config"] != config_json(config()))
    throw dpsgd::FormatError(path + " holds a model of shape " + file["config"].dump() + ", this run's is " +
                             config_json(config()).dump());
  const auto values = file["parameters"].get<std::vector<float>>();
  if (static_cast<std::int64_t>(values.size()) != num_parameters())
    throw dpsgd::FormatError(path + " holds " + std::to_string(values.size()) + " parameters, the model has " +
                             std::to_string(num_parameters()));
  std::copy(values.begin(), values.end(), model_->parameters().begin());
}

}  // namespace dp_lm
