// Explicit instantiations of the float and double templates that are costly to compile in every user TU.
#include "dpsgd/noise/gaussian_noise.hpp"

namespace dpsgd {

template void add_gaussian_noise<float>(std::span<float>, double, const NoiseKey&, NoiseMode, std::uint64_t);
template void add_gaussian_noise<double>(std::span<double>, double, const NoiseKey&, NoiseMode, std::uint64_t);
template void add_scaled_gaussian_noise<float>(std::span<float>, double, const NoiseKey&, NoiseMode, std::uint64_t,
                                               float);
template void add_scaled_gaussian_noise<double>(std::span<double>, double, const NoiseKey&, NoiseMode, std::uint64_t,
                                                double);

}  // namespace dpsgd
