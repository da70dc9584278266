// DeviceContext and the device-memory helpers behind DeviceBuffer.
#include <cublas_v2.h>

#include <algorithm>
#include <string>

#include "blas.cuh"
#include "check.cuh"
#include "dpsgd/cuda/device_context.hpp"

namespace dpsgd::cuda {

bool device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

namespace detail {

void* device_allocate(std::size_t bytes) {
  void* pointer = nullptr;
  DPSGD_CUDA_CHECK(cudaMalloc(&pointer, bytes));
  return pointer;
}

void device_free(void* pointer) noexcept {
  // A destructor must not throw; a failed free leaves nothing to recover.
  if (pointer != nullptr) static_cast<void>(cudaFree(pointer));
}

void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes, Stream stream) {
  DPSGD_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes, cudaMemcpyHostToDevice, stream));
  DPSGD_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes, Stream stream) {
  DPSGD_CUDA_CHECK(cudaMemcpyAsync(host_destination, device_source, bytes, cudaMemcpyDeviceToHost, stream));
  DPSGD_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void fill_zero(void* device_destination, std::size_t bytes, Stream stream) {
  DPSGD_CUDA_CHECK(cudaMemsetAsync(device_destination, 0, bytes, stream));
}

}  // namespace detail

struct DeviceContext::State {
  int device = 0;
  int multiprocessors = 0;
  cudaStream_t stream = nullptr;
  bool owns_stream = true;
  cublasHandle_t blas = nullptr;
  void* scratch = nullptr;
  std::size_t scratch_bytes = 0;

  ~State() {
    // Teardown errors cannot be reported from a destructor; the driver reclaims what is left.
    if (scratch != nullptr) static_cast<void>(cudaFree(scratch));
    if (blas != nullptr) static_cast<void>(cublasDestroy(blas));
    if (owns_stream && stream != nullptr) static_cast<void>(cudaStreamDestroy(stream));
  }
};

DeviceContext::DeviceContext(int device) : DeviceContext(device, true, nullptr) {}

DeviceContext DeviceContext::on_stream(Stream stream, int device) { return DeviceContext(device, false, stream); }

DeviceContext::DeviceContext(int device, bool owns_stream, Stream adopted) : state_(std::make_unique<State>()) {
  int count = 0;
  DPSGD_CUDA_CHECK(cudaGetDeviceCount(&count));
  DPSGD_CHECK_ARG(device >= 0 && device < count,
                  "device must be in [0, " << count << ") (the CUDA devices present), got " << device);
  state_->device = device;
  DPSGD_CUDA_CHECK(cudaSetDevice(device));
  DPSGD_CUDA_CHECK(cudaDeviceGetAttribute(&state_->multiprocessors, cudaDevAttrMultiProcessorCount, device));
  state_->owns_stream = owns_stream;
  if (owns_stream) {
    DPSGD_CUDA_CHECK(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking));
  } else {
    state_->stream = adopted;
  }
  DPSGD_CUBLAS_CHECK(cublasCreate(&state_->blas));
  // IEEE single and double precision only: no TF32 tensor-core products (2^-11 relative, which the
  // clip bound's rounding allowance does not cover), even when NVIDIA_TF32_OVERRIDE asks for them.
  DPSGD_CUBLAS_CHECK(cublasSetMathMode(state_->blas, CUBLAS_PEDANTIC_MATH));
  DPSGD_CUBLAS_CHECK(cublasSetStream(state_->blas, state_->stream));
}

DeviceContext::~DeviceContext() = default;
DeviceContext::DeviceContext(DeviceContext&&) noexcept = default;
DeviceContext& DeviceContext::operator=(DeviceContext&&) noexcept = default;

int DeviceContext::device() const { return state_->device; }
Stream DeviceContext::stream() const { return state_->stream; }
BlasHandle DeviceContext::blas() const { return state_->blas; }
int DeviceContext::multiprocessor_count() const { return state_->multiprocessors; }

void DeviceContext::synchronize() const {
  activate();
  DPSGD_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
}

void DeviceContext::activate() const { DPSGD_CUDA_CHECK(cudaSetDevice(state_->device)); }

void* DeviceContext::scratch(std::size_t bytes) {
  if (bytes <= state_->scratch_bytes) return state_->scratch;
  // Grow by at least half again, so a slowly growing sequence of requests reallocates rarely.
  const std::size_t grown = std::max(bytes, state_->scratch_bytes + state_->scratch_bytes / 2);
  // Work queued on the stream may still read the old buffer: wait before freeing it.
  DPSGD_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
  if (state_->scratch != nullptr) DPSGD_CUDA_CHECK(cudaFree(state_->scratch));
  state_->scratch = nullptr;
  state_->scratch_bytes = 0;
  DPSGD_CUDA_CHECK(cudaMalloc(&state_->scratch, grown));
  state_->scratch_bytes = grown;
  return state_->scratch;
}

}  // namespace dpsgd::cuda
