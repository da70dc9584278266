// Tests of the flat-vector passes: the first non-finite element and the chunked parallel loop.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "dpsgd/core/detail/vector_ops.hpp"

namespace dpsgd {
namespace {

template <typename Scalar>
void check_first_nonfinite() {
  // 5 chunks and a bit: the parallel path, and the reduction must keep the smallest index.
  const std::size_t size = 5 * detail::kVectorOpChunk + 17;
  std::vector<Scalar> values(size, Scalar{1.5});
  EXPECT_EQ(detail::first_nonfinite<Scalar>(values), size);
  EXPECT_EQ(detail::first_nonfinite<Scalar>(std::span<const Scalar>{}), 0u);
  values[size - 1] = std::numeric_limits<Scalar>::infinity();
  EXPECT_EQ(detail::first_nonfinite<Scalar>(values), size - 1);
  values[3 * detail::kVectorOpChunk + 2] = -std::numeric_limits<Scalar>::infinity();
  EXPECT_EQ(detail::first_nonfinite<Scalar>(values), 3 * detail::kVectorOpChunk + 2);
  values[7] = std::numeric_limits<Scalar>::quiet_NaN();
  EXPECT_EQ(detail::first_nonfinite<Scalar>(values), 7u);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    EXPECT_EQ(detail::first_nonfinite<Scalar>(values), 7u) << threads << " threads";
  }
  omp_set_num_threads(saved);
  // The largest finite values, denormals and negative zero are finite.
  std::vector<Scalar> edge{std::numeric_limits<Scalar>::max(), -std::numeric_limits<Scalar>::max(),
                           std::numeric_limits<Scalar>::denorm_min(), Scalar{-0.0}};
  EXPECT_EQ(detail::first_nonfinite<Scalar>(edge), edge.size());
}

TEST(VectorOps, FirstNonFiniteFloat) { check_first_nonfinite<float>(); }
TEST(VectorOps, FirstNonFiniteDouble) { check_first_nonfinite<double>(); }

TEST(VectorOps, ForEachChunkCoversEveryIndexOnce) {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, detail::kVectorOpChunk, 3 * detail::kVectorOpChunk + 5}) {
    std::vector<int> hits(size, 0);
    detail::for_each_chunk(size, [&](std::size_t begin, std::size_t end) {
      for (std::size_t j = begin; j < end; ++j) ++hits[j];
    });
    for (std::size_t j = 0; j < size; ++j) ASSERT_EQ(hits[j], 1) << "size " << size << ", index " << j;
  }
}

}  // namespace
}  // namespace dpsgd
