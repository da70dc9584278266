// A user program of the dpsgd::audit component: a Clopper-Pearson interval from the audit library.
#include <dpsgd/audit/canary_auditor.hpp>

#include <cstdio>

int main() {
  const dpsgd::audit::ProportionInterval interval = dpsgd::audit::clopper_pearson(30, 100, 0.05);
  std::printf("audit consumer: 30 of 100 lies in [%.3f, %.3f]\n", interval.lower, interval.upper);
  return interval.lower < 0.3 && 0.3 < interval.upper ? 0 : 1;
}
