// StopSignal: a sig_atomic_t set from the handler; the previous handlers restored on destruction.
#include "dpsgd/core/stop_signal.hpp"

#include <atomic>
#include <csignal>

#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<bool> g_installed{false};
struct sigaction g_previous_int {
}, g_previous_term{};

extern "C" void on_stop_signal(int signal) { g_signal = signal; }

void install(int signal, struct sigaction* previous) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;  // the second signal takes the default action
  sigaction(signal, &action, previous);
}

}  // namespace

StopSignal::StopSignal() {
  DPSGD_CHECK_ARG(!g_installed.exchange(true), "only one dpsgd::StopSignal may exist at a time");
  g_signal = 0;
  install(SIGINT, &g_previous_int);
  install(SIGTERM, &g_previous_term);
}

StopSignal::~StopSignal() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  g_installed = false;
}

bool StopSignal::requested() const { return g_signal != 0; }
int StopSignal::signal() const { return g_signal; }
int StopSignal::exit_status() const { return g_signal == 0 ? 0 : 128 + g_signal; }
const char* StopSignal::name() const {
  switch (g_signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "";
  }
}

}  // namespace dpsgd
