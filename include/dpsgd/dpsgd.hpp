// Umbrella header: everything a DP-SGD training loop needs from dpsgd.
#pragma once

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"
#include "dpsgd/noise/philox.hpp"
#include "dpsgd/noise/secure_seed.hpp"
#include "dpsgd/optim/dp_sgd.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"
