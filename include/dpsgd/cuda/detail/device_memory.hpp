// Internal: thin wrappers over the CUDA runtime's memory calls, so that the templates of
// device_context.hpp need no CUDA include.
#pragma once

#include <cstddef>

#include "dpsgd/cuda/stream.hpp"

namespace dpsgd::cuda::detail {

// Thin wrappers over the CUDA runtime so that templates in this header need no CUDA include.
// Every failure throws dpsgd::CudaError naming the call and the CUDA error code.
void* device_allocate(std::size_t bytes);
void device_free(void* pointer) noexcept;
// Both copies are ordered on `stream` after earlier work and return when the copy has completed.
void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes, Stream stream);
void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes, Stream stream);
void fill_zero(void* device_destination, std::size_t bytes, Stream stream);

}  // namespace dpsgd::cuda::detail
