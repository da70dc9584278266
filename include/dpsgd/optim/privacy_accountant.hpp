// Former home of PrivacyAccountant, kept so that existing includes compile: the interface now lives in
// accounting/privacy_accountant.hpp, below the step driver that calls it.
#pragma once

#include "dpsgd/accounting/privacy_accountant.hpp"
