// A data-parallel training run on dpsgd::mpi::DistributedRun that checks itself against a reference:
// logistic regression on synthetic data, weights and bias as two tensors, a checkpoint every step.
// Run under mpirun by tests/mpi/mpi_test.sh; options below. Exit status 0 = the checks passed.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/mpi/distributed_run.hpp"
#include "dpsgd/mpi/session.hpp"
#include "dpsgd/optim/optimizer.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"

namespace {

constexpr std::int64_t kN = 2000, kFeatures = 10;

struct Options {
  std::string run_dir, out, reference;
  std::int64_t steps = 20, die_at = -1, diverge_at = -1, throw_at = -1;
  bool resume = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    const auto value = [&]() -> std::string {
      if (k + 1 >= argc) throw dpsgd::InvalidArgument(a + " needs a value");
      return argv[++k];
    };
    if (a == "--run-dir")
      o.run_dir = value();
    else if (a == "--out")
      o.out = value();
    else if (a == "--reference")
      o.reference = value();
    else if (a == "--steps")
      o.steps = std::stoll(value());
    else if (a == "--die-at")
      o.die_at = std::stoll(value());
    else if (a == "--diverge-at")
      o.diverge_at = std::stoll(value());
    else if (a == "--throw-at")
      o.throw_at = std::stoll(value());
    else if (a == "--resume")
      o.resume = true;
    else
      throw dpsgd::InvalidArgument("unknown option " + a);
  }
  if (o.run_dir.empty()) throw dpsgd::InvalidArgument("--run-dir is required");
  return o;
}

struct Data {
  dpsgd::RowMajorMatrix<float> x{kN, kFeatures};
  std::vector<float> y = std::vector<float>(kN);
  Data() {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (std::int64_t i = 0; i < kN; ++i) {
      for (std::int64_t j = 0; j < kFeatures; ++j) x(i, j) = normal(rng);
      y[i] = x(i, 0) + 0.5f * x(i, 1) > 0.0f ? 1.0f : 0.0f;
    }
  }
};

// This rank's clipped sum over its slots: per-example gradients of (w, b) as rows of kFeatures + 1.
std::vector<float> local_clipped_sum(const Data& d, const std::vector<float>& w, float b, const dpsgd::Batch& batch,
                                     dpsgd::mpi::SlotRange mine, const dpsgd::ClipConfig& clip) {
  dpsgd::RowMajorMatrix<float> rows = dpsgd::RowMajorMatrix<float>::Zero(mine.size(), kFeatures + 1);
  for (std::int64_t s = mine.begin; s < mine.end; ++s) {
    const std::int64_t i = batch.indices[static_cast<std::size_t>(s)];
    if (i == dpsgd::Batch::kPaddingIndex) continue;
    const float z = d.x.row(i).dot(Eigen::Map<const Eigen::VectorXf>(w.data(), kFeatures)) + b;
    const float r = 1.0f / (1.0f + std::exp(-z)) - d.y[static_cast<std::size_t>(i)];
    rows.row(s - mine.begin).head(kFeatures) = r * d.x.row(i);
    rows(s - mine.begin, kFeatures) = r;
  }
  std::vector<float> sum(kFeatures + 1, 0.0f);
  const std::span<const std::uint8_t> mask(batch.mask.data() + mine.begin, static_cast<std::size_t>(mine.size()));
  dpsgd::clip_and_accumulate<float>(rows, mask, clip, sum);
  return sum;
}

nlohmann::json result(const dpsgd::mpi::DistributedRun& run, const std::vector<float>& w, float b) {
  std::vector<float> params = w;
  params.push_back(b);
  return {{"params", params},
          {"ledger", run.run().ledger().to_json()},
          {"epsilon", run.epsilon(1e-5)},
          {"steps", run.next_step()},
          {"world_size", run.world_size()}};
}

// 0 if `got` matches the reference run: parameters within 1e-5 relative, identical ledger and epsilon.
int compare(const nlohmann::json& got, const std::string& reference_file) {
  const nlohmann::json ref = nlohmann::json::parse(dpsgd::read_file(reference_file));
  const auto p = got["params"].get<std::vector<double>>(), r = ref["params"].get<std::vector<double>>();
  double diff = 0, norm = 0;
  for (std::size_t k = 0; k < r.size(); ++k) diff += (p[k] - r[k]) * (p[k] - r[k]), norm += r[k] * r[k];
  const double relative = std::sqrt(diff / norm);
  const bool ledger_same = got["ledger"] == ref["ledger"];
  const bool epsilon_same = got["epsilon"] == ref["epsilon"];
  std::printf("world size %d vs reference %d: parameters differ by %.3g relative; ledger %s; epsilon %.6f vs %.6f\n",
              got["world_size"].get<int>(), ref["world_size"].get<int>(), relative,
              ledger_same ? "identical" : "DIFFERS", got["epsilon"].get<double>(), ref["epsilon"].get<double>());
  return relative <= 1e-5 && ledger_same && epsilon_same ? 0 : 1;
}

// slots_of_rank covers the capacity exactly, in rank order, with sizes that differ by at most one.
bool slots_partition_the_batch() {
  for (const std::int64_t capacity : {1, 2, 7, 100, 2357}) {
    for (int world = 1; world <= 9; ++world) {
      std::int64_t next = 0, smallest = capacity, largest = 0;
      for (int r = 0; r < world; ++r) {
        const dpsgd::mpi::SlotRange s = dpsgd::mpi::slots_of_rank(capacity, r, world);
        if (s.begin != next || s.end < s.begin) return false;
        next = s.end;
        smallest = std::min(smallest, s.size());
        largest = std::max(largest, s.size());
      }
      if (next != capacity || largest - smallest > 1) return false;
    }
  }
  return true;
}

int train(const Options& o, MPI_Comm comm) {
  if (!slots_partition_the_batch()) throw dpsgd::Error("slots_of_rank does not partition the batch evenly");
  const Data data;
  dpsgd::TrainingRunConfig config;
  config.directory = o.run_dir;
  config.start = o.resume ? dpsgd::TrainingRunConfig::Start::kResume : dpsgd::TrainingRunConfig::Start::kNew;
  config.dataset_size = kN;
  config.sampling_rate = 0.05;
  config.capacity = dpsgd::capacity_for_truncation_probability(kN, 0.05, 1e-12).capacity;
  config.noise_multiplier = 1.5;
  config.clip = dpsgd::ClipConfig::flat(1.0);
  config.steps = o.steps;
  config.seed = 12345;  // reproducible: the test compares world sizes
  dpsgd::mpi::DistributedRun run(comm, config, std::make_unique<dpsgd::Sgd<float>>(0.5));
  std::vector<float> w(kFeatures, 0.0f);
  float b = 0.0f;
  if (!run.restored_parameters().empty()) {
    w.assign(run.restored_parameters().begin(), run.restored_parameters().begin() + kFeatures);
    b = run.restored_parameters()[kFeatures];
  }
  while (!run.finished()) {
    const dpsgd::Batch batch = run.next_batch();
    if (static_cast<std::int64_t>(batch.step) == o.die_at && run.rank() == run.world_size() - 1) std::raise(SIGKILL);
    if (static_cast<std::int64_t>(batch.step) == o.throw_at && run.rank() == run.world_size() - 1)
      throw dpsgd::IoError("a planted error at step " + std::to_string(batch.step));
    if (static_cast<std::int64_t>(batch.step) == o.diverge_at && run.rank() == run.world_size() - 1) w[0] += 1e-3f;
    std::vector<float> sum = local_clipped_sum(data, w, b, batch, run.my_slots(batch), config.clip);
    std::vector<float> bias_sum{sum.back()};
    sum.pop_back();
    const std::span<float> params[] = {w, std::span<float>(&b, 1)};
    const std::span<float> grads[] = {sum, bias_sum};
    run.step(params, grads, batch);
    std::vector<float> all = w;
    all.push_back(b);
    run.checkpoint(all);
  }
  const nlohmann::json got = result(run, w, b);
  if (!run.writes()) return 0;
  if (!o.out.empty()) dpsgd::write_file_atomically(o.out, got.dump() + "\n");
  return o.reference.empty() ? 0 : compare(got, o.reference);
}

}  // namespace

int main(int argc, char** argv) {
  dpsgd::mpi::Session session(argc, argv);
  return dpsgd::mpi::run_or_abort(MPI_COMM_WORLD, [&] {
    try {
      return train(parse(argc, argv), MPI_COMM_WORLD);
    } catch (const dpsgd::mpi::ReplicaDivergence& e) {
      if (session.rank() == 0) std::fprintf(stderr, "%s\n", e.what());
      return 3;  // every rank detected it together: no abort needed
    }
  });
}
