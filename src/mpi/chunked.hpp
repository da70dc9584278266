// Internal to dpsgd::mpi: MPI_Bcast of any number of elements (MPI counts are int, so large buffers go
// in chunks), shared by the JSON broadcast and the step's sum.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstddef>

namespace dpsgd::mpi::detail {

constexpr std::size_t kChunk = std::size_t{1} << 28;

// Rank 0's `count` elements of `type` at `data` into every rank's `data`.
template <typename T>
void broadcast_chunked(MPI_Comm comm, T* data, std::size_t count, MPI_Datatype type) {
  for (std::size_t at = 0; at < count; at += kChunk)
    MPI_Bcast(data + at, static_cast<int>(std::min(kChunk, count - at)), type, 0, comm);
}

}  // namespace dpsgd::mpi::detail
