// The batched Philox4x32-10 + Box-Muller kernels behind add_gaussian_noise on the CPU: AVX-512 and portable.
#include <algorithm>
#include <cstring>

#include "dpsgd/noise/gaussian_noise.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DPSGD_NOISE_AVX512 1
#endif

namespace dpsgd::detail {
namespace {

constexpr int kLanes = 64;  // Philox blocks per portable batch: structure-of-arrays, one vector lane each

// One batch of up to kLanes blocks, written so that the compiler vectorises both loops (the Philox
// rounds and the transform) for whatever the build targets. This file is compiled with
// -ffp-contract=off: no path fuses a multiply and an add, so every path gives the scalar bits.
void portable_batch(PhiloxKey philox_key, const NoiseKey& key, std::uint32_t first_block, int count, double* out) {
  alignas(64) std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  const auto step_lo = static_cast<std::uint32_t>(key.step), step_hi = static_cast<std::uint32_t>(key.step >> 32);
  for (int j = 0; j < kLanes; ++j) {
    c0[j] = first_block + static_cast<std::uint32_t>(j);
    c1[j] = key.stream;
    c2[j] = step_lo;
    c3[j] = step_hi;
  }
  std::uint32_t k0 = philox_key.v[0], k1 = philox_key.v[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    for (int j = 0; j < kLanes; ++j) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0[j];
      const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2[j];
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<std::uint32_t>(p1);
      c3[j] = static_cast<std::uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
  }
  alignas(64) double z0[kLanes], z1[kLanes];
  for (int j = 0; j < kLanes; ++j) box_muller(PhiloxCounter{{c0[j], c1[j], c2[j], c3[j]}}, z0[j], z1[j]);
  for (int j = 0; j < count; ++j) {
    out[2 * j] = z0[j];
    out[2 * j + 1] = z1[j];
  }
}

#ifdef DPSGD_NOISE_AVX512
#define DPSGD_AVX512 __attribute__((target("avx512f,avx512dq"), always_inline)) inline

// The same operations as box_muller(philox4x32_10(...)) in the same order, eight blocks at a time in
// 64-bit lanes (a counter word in the low half of each). Separate multiplies and adds (no FMA) and
// IEEE division and square root, so the bits equal the scalar path's; noise_test checks that.
DPSGD_AVX512 __m512d mul(__m512d a, double b) { return _mm512_mul_pd(a, _mm512_set1_pd(b)); }
DPSGD_AVX512 __m512d add(__m512d a, double b) { return _mm512_add_pd(a, _mm512_set1_pd(b)); }
DPSGD_AVX512 __m512d horner_step(__m512d p, __m512d x, double c) { return add(_mm512_mul_pd(p, x), c); }

DPSGD_AVX512 __m512d small_uint_to_double8(__m512i n) {
  return add(_mm512_castsi512_pd(_mm512_or_si512(n, _mm512_set1_epi64(0x4330000000000000LL))), -4503599627370496.0);
}

DPSGD_AVX512 __m512d uniform_open8(__m512i hi, __m512i lo) {
  const __m512i bits = _mm512_or_si512(_mm512_slli_epi64(hi, 20), _mm512_srli_epi64(lo, 12));
  return mul(add(small_uint_to_double8(bits), 0.5), 0x1.0p-52);
}

DPSGD_AVX512 __m512d log_positive8(__m512d u) {
  constexpr long long kSqrtHalfBits = 0x3FE6A09E667F3BCDLL;
  const __m512i shifted =
      _mm512_add_epi64(_mm512_castpd_si512(u), _mm512_set1_epi64(0x3FF0000000000000LL - kSqrtHalfBits));
  const __m512d e = add(small_uint_to_double8(_mm512_srli_epi64(shifted, 52)), -1023.0);
  const __m512d m = _mm512_castsi512_pd(_mm512_add_epi64(
      _mm512_and_si512(shifted, _mm512_set1_epi64(0x000FFFFFFFFFFFFFLL)), _mm512_set1_epi64(kSqrtHalfBits)));
  const __m512d s = _mm512_div_pd(add(m, -1.0), add(m, 1.0));
  const __m512d s2 = _mm512_mul_pd(s, s);
  __m512d p = _mm512_set1_pd(1.0 / 19.0);
  p = horner_step(p, s2, 1.0 / 17.0);
  p = horner_step(p, s2, 1.0 / 15.0);
  p = horner_step(p, s2, 1.0 / 13.0);
  p = horner_step(p, s2, 1.0 / 11.0);
  p = horner_step(p, s2, 1.0 / 9.0);
  p = horner_step(p, s2, 1.0 / 7.0);
  p = horner_step(p, s2, 1.0 / 5.0);
  p = horner_step(p, s2, 1.0 / 3.0);
  const __m512d two_s = mul(s, 2.0);
  const __m512d log_m = _mm512_add_pd(two_s, _mm512_mul_pd(two_s, _mm512_mul_pd(s2, p)));
  return _mm512_add_pd(mul(e, 6.93147180369123816490e-01), _mm512_add_pd(log_m, mul(e, 1.90821492927058770002e-10)));
}

DPSGD_AVX512 void sincos_two_pi8(__m512d u, __m512d& sine, __m512d& cosine) {
  constexpr double kRound = 6755399441055744.0;
  const __m512d t = mul(u, 4.0);
  const __m512d shifted = add(t, kRound);
  const __m512i quadrant = _mm512_and_si512(_mm512_castpd_si512(shifted), _mm512_set1_epi64(3));
  const __m512d r = _mm512_sub_pd(t, add(shifted, -kRound));
  const __m512d theta = mul(r, 1.57079632679489661923);
  const __m512d x2 = _mm512_mul_pd(theta, theta);
  __m512d ps = _mm512_set1_pd(1.0 / 1307674368000.0);
  ps = horner_step(ps, x2, -1.0 / 6227020800.0);
  ps = horner_step(ps, x2, 1.0 / 39916800.0);
  ps = horner_step(ps, x2, -1.0 / 362880.0);
  ps = horner_step(ps, x2, 1.0 / 5040.0);
  ps = horner_step(ps, x2, -1.0 / 120.0);
  ps = horner_step(ps, x2, 1.0 / 6.0);
  const __m512d s = _mm512_sub_pd(theta, _mm512_mul_pd(_mm512_mul_pd(theta, x2), ps));
  __m512d pc = _mm512_set1_pd(-1.0 / 20922789888000.0);
  pc = horner_step(pc, x2, 1.0 / 87178291200.0);
  pc = horner_step(pc, x2, -1.0 / 479001600.0);
  pc = horner_step(pc, x2, 1.0 / 3628800.0);
  pc = horner_step(pc, x2, -1.0 / 40320.0);
  pc = horner_step(pc, x2, 1.0 / 720.0);
  pc = horner_step(pc, x2, -1.0 / 24.0);
  const __m512d c =
      _mm512_sub_pd(_mm512_sub_pd(_mm512_set1_pd(1.0), mul(x2, 0.5)), _mm512_mul_pd(_mm512_mul_pd(x2, x2), pc));
  const __mmask8 swap = _mm512_test_epi64_mask(quadrant, _mm512_set1_epi64(1));
  const __m512d sin_q = _mm512_mask_blend_pd(swap, s, c);
  const __m512d cos_q = _mm512_mask_blend_pd(swap, c, s);
  const __m512i sin_sign = _mm512_slli_epi64(_mm512_and_si512(quadrant, _mm512_set1_epi64(2)), 62);
  const __m512i cos_sign =
      _mm512_slli_epi64(_mm512_and_si512(_mm512_add_epi64(quadrant, _mm512_set1_epi64(1)), _mm512_set1_epi64(2)), 62);
  sine = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(sin_q), sin_sign));
  cosine = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(cos_q), cos_sign));
}

// Normals of the eight blocks first_block .. first_block + 7 into out[0..16), z0 z1 per block.
// The Philox round keys, broadcast once per call rather than once per round of every group.
struct RoundKeys8 {
  __m512i k0[10], k1[10];
};

DPSGD_AVX512 RoundKeys8 round_keys8(PhiloxKey philox_key) {
  RoundKeys8 keys;
  std::uint32_t k0 = philox_key.v[0], k1 = philox_key.v[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    keys.k0[round] = _mm512_set1_epi64(k0);
    keys.k1[round] = _mm512_set1_epi64(k1);
  }
  return keys;
}

DPSGD_AVX512 void eight_blocks(const RoundKeys8& keys, std::uint32_t stream, std::uint64_t step,
                               std::uint32_t first_block, double* out) {
  const __m256i blocks =
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first_block)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m512i c0 = _mm512_cvtepu32_epi64(blocks);
  __m512i c1 = _mm512_set1_epi64(stream);
  __m512i c2 = _mm512_set1_epi64(static_cast<std::uint32_t>(step));
  __m512i c3 = _mm512_set1_epi64(static_cast<std::uint32_t>(step >> 32));
  const __m512i m0 = _mm512_set1_epi64(kPhiloxM0), m1 = _mm512_set1_epi64(kPhiloxM1);
  for (int round = 0; round < 10; ++round) {
    // _mm512_mul_epu32 reads only the low 32 bits of each lane, so the high halves may hold junk
    // until the final mask.
    const __m512i p0 = _mm512_mul_epu32(c0, m0);
    const __m512i p1 = _mm512_mul_epu32(c2, m1);
    // 0x96: the three-way exclusive or, one instruction.
    const __m512i n0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1, keys.k0[round], 0x96);
    const __m512i n2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3, keys.k1[round], 0x96);
    c1 = p1;
    c3 = p0;
    c0 = n0;
    c2 = n2;
  }
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFLL);
  const __m512d u1 = uniform_open8(_mm512_and_si512(c0, low32), _mm512_and_si512(c1, low32));
  const __m512d u2 = uniform_open8(_mm512_and_si512(c2, low32), _mm512_and_si512(c3, low32));
  const __m512d radius = _mm512_sqrt_pd(mul(log_positive8(u1), -2.0));
  __m512d sine, cosine;
  sincos_two_pi8(u2, sine, cosine);
  const __m512d z0 = _mm512_mul_pd(radius, cosine), z1 = _mm512_mul_pd(radius, sine);
  _mm512_storeu_pd(out, _mm512_permutex2var_pd(z0, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), z1));
  _mm512_storeu_pd(out + 8, _mm512_permutex2var_pd(z0, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), z1));
}

__attribute__((target("avx512f,avx512dq"))) void avx512_blocks(PhiloxKey philox_key, const NoiseKey& key,
                                                               std::uint32_t first_block, std::uint32_t count,
                                                               double* out) {
  const RoundKeys8 keys = round_keys8(philox_key);
  std::uint32_t done = 0;
  for (; done + 8 <= count; done += 8)
    eight_blocks(keys, key.stream, key.step, first_block + done, out + 2 * static_cast<std::size_t>(done));
  if (done < count) {
    double tail[16];
    eight_blocks(keys, key.stream, key.step, first_block + done, tail);
    std::memcpy(out + 2 * static_cast<std::size_t>(done), tail, 2 * (count - done) * sizeof(double));
  }
}

bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"); }
#endif

}  // namespace

bool standard_normal_blocks_use_avx512() {
#ifdef DPSGD_NOISE_AVX512
  static const bool available = cpu_has_avx512();
  return available;
#else
  return false;
#endif
}

void standard_normal_blocks(PhiloxKey philox_key, const NoiseKey& key, std::uint32_t first_block, std::uint32_t count,
                            double* out) {
#ifdef DPSGD_NOISE_AVX512
  if (standard_normal_blocks_use_avx512()) {
    avx512_blocks(philox_key, key, first_block, count, out);
    return;
  }
#endif
  portable_standard_normal_blocks(philox_key, key, first_block, count, out);
}

void portable_standard_normal_blocks(PhiloxKey philox_key, const NoiseKey& key, std::uint32_t first_block,
                                     std::uint32_t count, double* out) {
  for (std::uint32_t done = 0; done < count; done += kLanes) {
    const int n = static_cast<int>(std::min<std::uint32_t>(kLanes, count - done));
    portable_batch(philox_key, key, first_block + done, n, out + 2 * static_cast<std::size_t>(done));
  }
}

}  // namespace dpsgd::detail
