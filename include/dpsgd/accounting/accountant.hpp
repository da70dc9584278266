// All of the accountant's public queries in one include: epsilon and delta bounds, truncation, calibration.
#pragma once

#include "dpsgd/accounting/calibration.hpp"
#include "dpsgd/accounting/epsilon_delta.hpp"
#include "dpsgd/accounting/training_phase.hpp"
