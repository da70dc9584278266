// Elementwise passes over flat parameter-sized vectors: vectorised, and OpenMP-parallel when large.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/real_scalar.hpp"

namespace dpsgd::detail {

// Elements per OpenMP work item: large enough that the team's start-up is amortised.
inline constexpr std::size_t kVectorOpChunk = std::size_t{1} << 16;

// Runs body(begin, end) over [0, size) in chunks, on the OpenMP team when the vector is large.
// Chunks are disjoint, so elementwise bodies give the same bits for any thread count.
template <typename Body>
void for_each_chunk(std::size_t size, Body&& body) {
  const std::size_t chunks = (size + kVectorOpChunk - 1) / kVectorOpChunk;
  if (chunks <= 1 || !worth_parallel(static_cast<long long>(size))) {
    body(std::size_t{0}, size);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
    const std::size_t begin = chunk * kVectorOpChunk;
    body(begin, begin + kVectorOpChunk < size ? begin + kVectorOpChunk : size);
  }
}

// The index of the first NaN or infinity in values, or values.size() if there is none. Tests the
// exponent bits (all ones) as integers, a test compilers vectorise, unlike a loop of std::isfinite
// calls that stops at the first failure: on a 4 M-parameter model that loop took 4 ms a step.
template <RealScalar Scalar>
std::size_t first_nonfinite(std::span<const Scalar> values) {
  using Bits = std::conditional_t<std::is_same_v<Scalar, float>, std::uint32_t, std::uint64_t>;
  constexpr Bits kExponent = static_cast<Bits>(std::is_same_v<Scalar, float> ? std::uint64_t{0x7F800000u}
                                                                             : std::uint64_t{0x7FF0000000000000ull});
  const std::size_t size = values.size();
  const std::size_t chunks = (size + kVectorOpChunk - 1) / kVectorOpChunk;
  std::size_t first = size;
  const auto scan = [&](std::size_t begin, std::size_t end) {
    Bits any = 0;  // nonzero iff some element in [begin, end) is non-finite
    for (std::size_t j = begin; j < end; ++j) {
      Bits bits;
      std::memcpy(&bits, &values[j], sizeof bits);
      any |= static_cast<Bits>((bits & kExponent) == kExponent);
    }
    if (any == 0) return end;
    for (std::size_t j = begin; j < end; ++j) {
      Bits bits;
      std::memcpy(&bits, &values[j], sizeof bits);
      if ((bits & kExponent) == kExponent) return j;
    }
    return end;
  };
  if (chunks <= 1 || !worth_parallel(static_cast<long long>(size))) return scan(0, size);
#pragma omp parallel for schedule(static) reduction(min : first)
  for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
    const std::size_t begin = chunk * kVectorOpChunk;
    const std::size_t end = begin + kVectorOpChunk < size ? begin + kVectorOpChunk : size;
    const std::size_t found = scan(begin, end);
    if (found < end && found < first) first = found;
  }
  return first;
}

}  // namespace dpsgd::detail
