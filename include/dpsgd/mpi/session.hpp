// dpsgd::mpi::Session: MPI's lifetime for one program, and the rule that an error on any rank ends
// the whole job (with a message naming the rank) instead of leaving the others waiting.
#pragma once

#include <mpi.h>

#include <nlohmann/json.hpp>

#include <exception>
#include <string>

namespace dpsgd::mpi {

// MPI_Init on construction (unless already initialised), MPI_Finalize on destruction.
class Session {
 public:
  Session(int& argc, char**& argv);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();
  int rank() const { return rank_; }
  int world_size() const { return size_; }

 private:
  bool owns_ = false;
  int rank_ = 0, size_ = 1;
};

// Collective: rank 0's `value` on every rank (e.g. a run plan computed once).
nlohmann::json broadcast_json(MPI_Comm comm, const nlohmann::json& value);

// "rank R of W" for messages.
std::string rank_name(MPI_Comm comm);

// Prints "dpsgd::mpi: rank R of W: <what>" on stderr and ends every rank of comm (MPI_Abort) with
// exit_code: a rank that fails mid-step would otherwise leave the others blocked in a collective.
[[noreturn]] void abort_job(MPI_Comm comm, const std::string& what, int exit_code = 1);

// Runs body() and ends the whole job through abort_job if it throws; returns body()'s status.
template <typename Body>
int run_or_abort(MPI_Comm comm, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    abort_job(comm, e.what());
  }
}

}  // namespace dpsgd::mpi
