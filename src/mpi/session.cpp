// dpsgd::mpi::Session and abort_job: MPI's lifetime and the end of a job that one rank cannot continue.
#include "dpsgd/mpi/session.hpp"

#include "chunked.hpp"

#include <cstdio>
#include <cstdlib>

namespace dpsgd::mpi {

Session::Session(int& argc, char**& argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    MPI_Init(&argc, &argv);
    owns_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

Session::~Session() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (owns_ && !finalised) MPI_Finalize();
}

nlohmann::json broadcast_json(MPI_Comm comm, const nlohmann::json& value) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string text = rank == 0 ? value.dump() : std::string();
  unsigned long long size = text.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
  text.resize(size);
  detail::broadcast_chunked(comm, text.data(), text.size(), MPI_CHAR);
  return nlohmann::json::parse(text);
}

std::string rank_name(MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  return "rank " + std::to_string(rank) + " of " + std::to_string(size);
}

void abort_job(MPI_Comm comm, const std::string& what, int exit_code) {
  std::fprintf(stderr, "dpsgd::mpi: %s: %s; ending the job on every rank\n", rank_name(comm).c_str(), what.c_str());
  std::fflush(stderr);
  MPI_Abort(comm, exit_code);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest if it ever did
}

}  // namespace dpsgd::mpi
