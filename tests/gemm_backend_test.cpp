// Tests of the sgemm dispatch: Eigen's float products, in every transpose combination and with
// strides, agree with a double reference whichever backend (oneDNN or the linked BLAS) computes them.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <random>
#include <string>

#include "dpsgd/core/gemm_backend.hpp"

namespace dpsgd {
namespace {

using Floats = Eigen::MatrixXf;
using Doubles = Eigen::MatrixXd;

Floats random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Floats m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

// Float products of k terms of magnitude <= 1 are within k * 2^-24 * (1 + small) of the exact sum of
// the rounded inputs; 1e-5 * k is a generous bound that a wrong operand or transpose exceeds by far.
void expect_close(const Floats& got, const Doubles& want, double k) {
  ASSERT_EQ(got.rows(), want.rows());
  ASSERT_EQ(got.cols(), want.cols());
  EXPECT_LE((got.cast<double>() - want).cwiseAbs().maxCoeff(), 1e-5 * k);
}

TEST(GemmBackend, NamesAKnownBackend) {
  const std::string name = gemm_backend();
  EXPECT_TRUE(name == "onednn" || name == "openblas" || name == "eigen") << name;
}

TEST(GemmBackend, ProductsInEveryTransposeMatchADoubleReference) {
  std::mt19937 rng(7);
  const Floats a = random_matrix(300, 200, rng), b = random_matrix(200, 150, rng);
  const Floats at = a.transpose(), bt = b.transpose();
  const Doubles want = a.cast<double>() * b.cast<double>();
  Floats c(300, 150);
  c.noalias() = a * b;
  expect_close(c, want, 200);
  c.noalias() = at.transpose() * b;
  expect_close(c, want, 200);
  c.noalias() = a * bt.transpose();
  expect_close(c, want, 200);
  c.noalias() = at.transpose() * bt.transpose();
  expect_close(c, want, 200);
  // Accumulation into C (beta = 1) and a scaled product (alpha) go through the same call.
  Floats acc = Floats::Ones(300, 150);
  acc.noalias() += 0.5f * (a * b);
  expect_close(acc, Doubles::Ones(300, 150) + 0.5 * want, 200);
}

TEST(GemmBackend, BlocksOfLargerMatricesUseTheirStrides) {
  std::mt19937 rng(8);
  const Floats a = random_matrix(400, 300, rng), b = random_matrix(300, 260, rng);
  const auto a_block = a.block(7, 11, 257, 129);
  const auto b_block = b.block(11, 3, 129, 201);
  Floats c = Floats::Zero(300, 250);
  c.block(5, 9, 257, 201).noalias() = a_block * b_block;
  expect_close(c.block(5, 9, 257, 201), a_block.cast<double>() * b_block.cast<double>(), 129);
  EXPECT_EQ(c.block(0, 0, 5, 250).cwiseAbs().maxCoeff(), 0.0f);  // nothing written outside the block
}

}  // namespace
}  // namespace dpsgd
