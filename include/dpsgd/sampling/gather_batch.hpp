// gather_batch: copies a batch's examples (and labels) out of a dataset into fixed-capacity buffers.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/sampling/batch.hpp"

namespace dpsgd {

// inputs.row(i) = dataset.row(batch.indices[i]) and batch_labels[i] = labels[batch.indices[i]] for
// the batch's examples; padding slots get a zero row and label 0 (their mask keeps them out of
// the gradient). Throws InvalidArgument on mismatched sizes or an index outside the dataset.
template <typename Scalar>
void gather_batch(const Batch& batch, const ConstRowsRef<Scalar>& dataset, std::span<const std::int32_t> labels,
                  RowsRef<Scalar> inputs, std::span<std::int32_t> batch_labels) {
  const std::int64_t capacity = batch.capacity();
  DPSGD_CHECK_ARG(inputs.rows() == capacity && inputs.cols() == dataset.cols(),
                  "inputs must be capacity x width = " << capacity << " x " << dataset.cols() << ", got "
                                                       << inputs.rows() << " x " << inputs.cols());
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(labels.size()) == dataset.rows(),
                  "labels.size() must equal the dataset size " << dataset.rows() << ", got " << labels.size());
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(batch_labels.size()) == capacity,
                  "batch_labels.size() must equal the capacity " << capacity << ", got " << batch_labels.size());
  for (std::int64_t i = 0; i < capacity; ++i) {
    const std::int64_t index = batch.indices[static_cast<std::size_t>(i)];
    if (index == Batch::kPaddingIndex) {
      inputs.row(i).setZero();
      batch_labels[static_cast<std::size_t>(i)] = 0;
      continue;
    }
    DPSGD_CHECK_ARG(index >= 0 && index < dataset.rows(),
                    "batch.indices[" << i << "] = " << index << " is outside the dataset of " << dataset.rows());
    inputs.row(i) = dataset.row(index);
    batch_labels[static_cast<std::size_t>(i)] = labels[static_cast<std::size_t>(index)];
  }
}

}  // namespace dpsgd
