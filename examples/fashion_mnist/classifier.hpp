// Classifier: the Fashion-MNIST models behind a small interface, so that the nn templates compile in
// their own translation unit (classifier.cpp), in parallel with the driver.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/data/idx.hpp"

namespace fashion_mnist {

class Classifier {
 public:
  // kind "cnn" (the Tanh CNN of Papernot et al. 2021) or "mlp" (784-256-10, tanh) on 28 x 28 pixels;
  // "scatter-linear" (one linear layer) or "scatter-cnn" (a small CNN) on scattering features of
  // 7 x 7 pixels x 81 channels (NHWC), the two heads of Tramer & Boneh (ICLR 2021).
  Classifier(const std::string& kind, std::uint64_t init_seed);

  // The kinds that take scattering features instead of pixels.
  static bool takes_scattering_features(const std::string& kind) { return kind.rfind("scatter-", 0) == 0; }
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  std::int64_t num_parameters() const;
  std::span<float> parameters();

  // gradient = the batch's summed gradient: each example's clipped to `clip` (private training), or
  // plain when clip is null (the non-private baseline). Slots with mask 0 add nothing.
  void batch_gradient(const dpsgd::RowMajorMatrix<float>& inputs, const std::vector<std::int32_t>& labels,
                      std::span<const std::uint8_t> mask, const dpsgd::ClipConfig* clip, std::span<float> gradient);

  double accuracy(const dpsgd::LabelledImages& data);
  // Mean cross-entropy over the first `count` images of `data` (held-out data: printing it releases
  // nothing about the training set, unlike the mean loss over private Poisson batches).
  double heldout_loss(const dpsgd::LabelledImages& data, std::int64_t count);

 private:
  struct Model;
  std::unique_ptr<Model> model_;
};

}  // namespace fashion_mnist
