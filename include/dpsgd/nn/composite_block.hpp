// nn::CompositeBlock: a block whose parameters are those of its parts, laid out one after another.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// The parts (attention's projections, a transformer block's norms and MLP) are owned by the derived
// class and registered in layout order; binding, initialisation, trainable ranges, norms and clipped
// sums are the parts' own, each on its sub-slice, all norms into the same group.
template <typename Scalar>
class CompositeBlock : public ParameterBlock<Scalar> {
 public:
  CompositeBlock() = default;
  CompositeBlock(const CompositeBlock&) = delete;  // parts_ points into the derived object
  CompositeBlock& operator=(const CompositeBlock&) = delete;

  std::int64_t num_parameters() const override {
    std::int64_t total = 0;
    for (const auto* part : parts_) total += part->num_parameters();
    return total;
  }
  std::uint32_t num_leaves() const override {
    std::uint32_t total = 0;
    for (const auto* part : parts_) total += part->num_leaves();
    return total;
  }
  void bind(Scalar* parameters) override {
    for (auto* part : parts_) {
      part->bind(parameters);
      parameters += part->num_parameters();
    }
  }
  // Part k is initialised as leaf layer_index + (leaves before it): every leaf of a model draws its
  // own initial values.
  void initialize(std::uint64_t seed, std::uint32_t layer_index) override {
    for (auto* part : parts_) {
      part->initialize(seed, layer_index);
      layer_index += part->num_leaves();
    }
  }
  std::vector<ParameterRange> trainable_ranges() const override {
    std::vector<ParameterRange> ranges;
    std::int64_t offset = 0;
    for (const auto* part : parts_) {
      for (const ParameterRange& range : part->trainable_ranges())
        ranges.push_back({offset + range.offset, range.size});
      offset += part->num_parameters();
    }
    return ranges;
  }
  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& norms, int group) const override {
    for (const auto* part : parts_) part->accumulate_squared_norms(batch, norms, group);
  }
  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(grad_slice.size()) == num_parameters(),
                    "grad_slice must have " << num_parameters() << " entries, got " << grad_slice.size());
    std::size_t offset = 0;
    for (const auto* part : parts_) {
      const auto size = static_cast<std::size_t>(part->num_parameters());
      part->accumulate_clipped_gradient(batch, factors, group, grad_slice.subspan(offset, size));
      offset += size;
    }
  }

 protected:
  void register_part(ParameterBlock<Scalar>& part) { parts_.push_back(&part); }

 private:
  std::vector<ParameterBlock<Scalar>*> parts_;
};

}  // namespace dpsgd::nn
