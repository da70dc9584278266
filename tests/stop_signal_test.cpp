// Tests of StopSignal: a signal becomes a request, one instance at a time, old handlers restored.
#include <gtest/gtest.h>

#include <csignal>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/stop_signal.hpp"

namespace dpsgd {
namespace {

TEST(StopSignal, TurnsSigtermIntoARequestAndRestoresTheHandler) {
  struct sigaction before {};
  sigaction(SIGTERM, nullptr, &before);
  {
    StopSignal stop;
    EXPECT_FALSE(stop.requested());
    EXPECT_EQ(stop.exit_status(), 0);
    std::raise(SIGTERM);  // without the handler this would end the test binary
    EXPECT_TRUE(stop.requested());
    EXPECT_EQ(stop.signal(), SIGTERM);
    EXPECT_EQ(stop.exit_status(), 128 + SIGTERM);
    EXPECT_STREQ(stop.name(), "SIGTERM");
  }
  struct sigaction after {};
  sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

TEST(StopSignal, OnlyOneAtATime) {
  StopSignal first;
  EXPECT_THROW(StopSignal second, InvalidArgument);
  EXPECT_FALSE(first.requested());  // a new instance starts without a request
}

}  // namespace
}  // namespace dpsgd
