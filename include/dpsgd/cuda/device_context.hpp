// DeviceContext (stream, cuBLAS handle, scratch memory), DeviceBuffer and DeviceRows: the device-side
// vocabulary of the dpsgd::cuda API. Plain C++: includes no CUDA header, so host code builds without nvcc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/cuda/detail/device_memory.hpp"
#include "dpsgd/cuda/stream.hpp"

namespace dpsgd::cuda {

// Whether a CUDA device is usable from this process (false, never an exception, when the driver
// or device is missing).
bool device_available();

// A CUDA stream (its own, or one it adopts), a cuBLAS handle bound to it, and a grow-only scratch
// buffer. Every dpsgd::cuda call takes a context and runs asynchronously on its stream, in call order,
// unless its comment says it synchronises. One context per host thread: it is not safe to share
// between threads.
class DeviceContext {
 public:
  // Creates and owns a non-blocking stream on `device`. Throws CudaError when `device` does not exist
  // or no CUDA driver is present.
  explicit DeviceContext(int device = 0);
  // Runs on `stream`, which the caller owns and must keep alive for the context's lifetime (a
  // framework's current stream, so that dpsgd's kernels order with the framework's own work;
  // nullptr is the legacy default stream). `device` is the device the stream belongs to.
  static DeviceContext on_stream(Stream stream, int device);
  ~DeviceContext();
  DeviceContext(DeviceContext&&) noexcept;
  DeviceContext& operator=(DeviceContext&&) noexcept;
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const;
  Stream stream() const;
  BlasHandle blas() const;
  int multiprocessor_count() const;
  // Blocks until all work queued on the stream is done; rethrows asynchronous kernel errors as CudaError.
  void synchronize() const;
  // Makes this context's device current for the calling thread (each dpsgd::cuda call does this).
  void activate() const;
  // Device scratch of at least `bytes`, valid until the next call to scratch(). Used by the library's
  // own calls; work on the stream is ordered, so reuse across calls on one context is safe.
  void* scratch(std::size_t bytes);

 private:
  struct State;
  DeviceContext(int device, bool owns_stream, Stream adopted);
  std::unique_ptr<State> state_;
};

// Owning, move-only device array of `size()` elements of a trivially copyable T.
template <typename T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t size)
      : data_(size == 0 ? nullptr : static_cast<T*>(detail::device_allocate(size * sizeof(T)))), size_(size) {}
  // Allocates and uploads `host`.
  explicit DeviceBuffer(std::span<const T> host, Stream stream = nullptr) : DeviceBuffer(host.size()) {
    upload(host, stream);
  }
  ~DeviceBuffer() { detail::device_free(data_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      detail::device_free(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }

  // Throws InvalidArgument when host.size() differs from size().
  void upload(std::span<const T> host, Stream stream = nullptr) {
    DPSGD_CHECK_ARG(host.size() == size_,
                    "host.size() must equal the buffer size " << size_ << ", got " << host.size());
    if (size_ > 0) detail::copy_to_device(data_, host.data(), size_ * sizeof(T), stream);
  }
  std::vector<T> download(Stream stream = nullptr) const {
    std::vector<T> host(size_);
    if (size_ > 0) detail::copy_to_host(host.data(), data_, size_ * sizeof(T), stream);
    return host;
  }
  void set_zero(Stream stream = nullptr) {
    if (size_ > 0) detail::fill_zero(data_, size_ * sizeof(T), stream);
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// A row-major matrix in device memory: `rows` rows of `cols` elements, row r starting at
// data + r * stride (stride 0 means cols). T may be const. The library never frees it.
template <typename T>
struct DeviceRows {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t stride = 0;

  DeviceRows() = default;
  DeviceRows(T* data_, std::int64_t rows_, std::int64_t cols_, std::int64_t stride_ = 0)
      : data(data_), rows(rows_), cols(cols_), stride(stride_) {}
  // A mutable view converts to a read-only one.
  template <typename U>
  requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
      DeviceRows(const DeviceRows<U>& other)  // NOLINT(google-explicit-constructor): a view conversion
      : data(other.data), rows(other.rows), cols(other.cols), stride(other.stride) {}

  std::int64_t row_stride() const { return stride == 0 ? cols : stride; }
};

}  // namespace dpsgd::cuda
