// A dpsgd::Batch's slots as LibTorch tensors: rows of tensors, examples of a torch::data dataset, the mask.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/batch.hpp"

namespace dpsgd::torch {

// The batch's slots of `data` (first dimension = examples): rows of its indices, zeros for padding.
::torch::Tensor gather_rows(const ::torch::Tensor& data, const Batch& batch);
// The batch's mask as a float tensor [capacity]: 1 for a sampled example, 0 for padding.
::torch::Tensor mask_tensor(const Batch& batch);

// The batch's slots of a torch::data dataset (anything with get(index) returning a
// torch::data::Example<> of fixed shapes, and size()): data and targets stacked along a new first
// dimension of the batch's capacity, zeros in padding slots. Throws InvalidArgument if the dataset's
// size is not the batch's dataset size.
template <typename Dataset>
::torch::data::Example<> gather_examples(Dataset& dataset, const Batch& batch) {
  const auto size = dataset.size();
  DPSGD_CHECK_ARG(size.has_value() && static_cast<std::int64_t>(*size) == batch.dataset_size,
                  "the dataset holds " << (size ? static_cast<std::int64_t>(*size) : -1)
                                       << " examples, the batch was drawn from " << batch.dataset_size);
  std::vector<::torch::Tensor> data, targets;
  data.reserve(batch.indices.size());
  targets.reserve(batch.indices.size());
  ::torch::data::Example<> shape_of;  // an example's shapes, for the padding slots
  for (std::size_t k = 0; k < batch.indices.size(); ++k) {
    if (batch.mask[k] == 0) {
      data.emplace_back();  // filled once a real example gives the shapes
      targets.emplace_back();
      continue;
    }
    ::torch::data::Example<> example = dataset.get(static_cast<std::size_t>(batch.indices[k]));
    if (!shape_of.data.defined()) shape_of = example;
    data.push_back(example.data);
    targets.push_back(example.target);
  }
  if (!shape_of.data.defined()) shape_of = dataset.get(0);  // every slot is padding
  for (std::size_t k = 0; k < data.size(); ++k) {
    if (!data[k].defined()) {
      data[k] = ::torch::zeros_like(shape_of.data);
      targets[k] = ::torch::zeros_like(shape_of.target);
    }
  }
  return {::torch::stack(data), ::torch::stack(targets)};
}

}  // namespace dpsgd::torch
