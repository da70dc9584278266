// Optimisers over a flat parameter vector: SGD, momentum (heavy-ball or Nesterov) and Adam.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "dpsgd/core/detail/vector_ops.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/real_scalar.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {

// Applies one update params <- params - step(gradient). Optimisers see only the privatised gradient,
// so any post-processing they do keeps the DP guarantee.
template <RealScalar Scalar>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Throws InvalidArgument if the sizes differ, or differ from the size of the first call (the
  // optimiser's state is sized then).
  void update(std::span<Scalar> params, std::span<const Scalar> gradient) {
    DPSGD_CHECK_ARG(params.size() == gradient.size(),
                    "params.size() = " << params.size() << " must equal gradient.size() = " << gradient.size());
    DPSGD_CHECK_ARG(size_ == 0 || params.size() == size_,
                    "params.size() must stay " << size_ << " across updates, got " << params.size());
    size_ = params.size();
    apply(params, gradient);
  }
  // Several tensors in one update, for models whose parameters live in several buffers: in order,
  // they form one parameter vector for the optimiser's state (so their sizes must stay the same across
  // updates). Throws InvalidArgument on mismatched counts or sizes.
  void update(std::span<const std::span<Scalar>> params, std::span<const std::span<const Scalar>> gradients) {
    DPSGD_CHECK_ARG(params.size() == gradients.size() && !params.empty(),
                    "params and gradients must list the same (non-zero) number of tensors, got "
                        << params.size() << " and " << gradients.size());
    std::size_t total = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      DPSGD_CHECK_ARG(params[k].size() == gradients[k].size(), "params[" << k << "].size() = " << params[k].size()
                                                                         << " must equal gradients[" << k
                                                                         << "].size() = " << gradients[k].size());
      total += params[k].size();
    }
    DPSGD_CHECK_ARG(size_ == 0 || total == size_, "the tensors must hold " << size_ << " values in all, got " << total);
    size_ = total;
    begin_update(total);
    std::size_t offset = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      apply_at(params[k], gradients[k], offset);
      offset += params[k].size();
    }
  }
  virtual std::string name() const = 0;
  // Scales the learning rate of the following updates (a schedule's factor; TrainingRun sets it every
  // step). Not part of state(): whoever schedules sets it again before each update. Throws
  // InvalidArgument unless finite and >= 0.
  void set_learning_rate_factor(double factor) {
    if (!(std::isfinite(factor) && factor >= 0.0))
      throw_invalid_value("learning_rate_factor", "finite and >= 0", factor);
    learning_rate_factor_ = factor;
  }
  double learning_rate_factor() const { return learning_rate_factor_; }
  // The optimiser's state as a flat vector (for checkpoints) and back.
  virtual std::vector<double> state() const { return {}; }
  virtual void set_state(const std::vector<double>& state) {
    DPSGD_CHECK_ARG(state.empty(), name() << " has no state, got " << state.size() << " values");
  }

 protected:
  virtual void apply(std::span<Scalar> params, std::span<const Scalar> gradient) = 0;
  // For several tensors: begin_update once per update (state sized to `total`, step counters), then
  // apply_at per tensor with its offset into the state. An optimiser that does not override them
  // takes one tensor only.
  virtual void begin_update(std::size_t /*total*/) {}
  virtual void apply_at(std::span<Scalar> params, std::span<const Scalar> gradient, std::size_t offset) {
    DPSGD_CHECK_ARG(offset == 0, name() << " updates one tensor at a time; pass a single tensor");
    apply(params, gradient);
  }
  std::size_t size_ = 0;
  double learning_rate_factor_ = 1.0;
};

template <typename Scalar>
class Sgd final : public Optimizer<Scalar> {
 public:
  explicit Sgd(double learning_rate) : learning_rate_(learning_rate) {
    validate_positive("learning_rate", learning_rate);
  }
  std::string name() const override { return "sgd"; }

 protected:
  void apply(std::span<Scalar> params, std::span<const Scalar> gradient) override { apply_at(params, gradient, 0); }
  void apply_at(std::span<Scalar> params, std::span<const Scalar> gradient, std::size_t) override {
    const auto lr = static_cast<Scalar>(learning_rate_ * this->learning_rate_factor_);
    detail::for_each_chunk(params.size(), [&](std::size_t begin, std::size_t end) {
      for (std::size_t j = begin; j < end; ++j) params[j] -= lr * gradient[j];
    });
  }

 private:
  double learning_rate_;
};

// v <- mu v + g; params <- params - lr v (heavy ball), or - lr (g + mu v) with Nesterov.
template <typename Scalar>
class Momentum final : public Optimizer<Scalar> {
 public:
  Momentum(double learning_rate, double momentum, bool nesterov = false)
      : learning_rate_(learning_rate), momentum_(momentum), nesterov_(nesterov) {
    validate_positive("learning_rate", learning_rate);
    DPSGD_CHECK_ARG(std::isfinite(momentum) && momentum >= 0.0 && momentum < 1.0,
                    "momentum must be in [0, 1), got " << momentum);
  }
  std::string name() const override { return nesterov_ ? "nesterov" : "momentum"; }
  std::vector<double> state() const override { return {velocity_.begin(), velocity_.end()}; }
  void set_state(const std::vector<double>& state) override {
    velocity_.assign(state.begin(), state.end());
    this->size_ = velocity_.size();
  }

 protected:
  void apply(std::span<Scalar> params, std::span<const Scalar> gradient) override {
    begin_update(params.size());
    apply_at(params, gradient, 0);
  }
  void begin_update(std::size_t total) override {
    if (velocity_.empty()) velocity_.assign(total, Scalar{0});
  }
  void apply_at(std::span<Scalar> params, std::span<const Scalar> gradient, std::size_t offset) override {
    const auto lr = static_cast<Scalar>(learning_rate_ * this->learning_rate_factor_);
    const auto mu = static_cast<Scalar>(momentum_);
    Scalar* velocity = velocity_.data() + offset;
    const bool nesterov = nesterov_;
    detail::for_each_chunk(params.size(), [&](std::size_t begin, std::size_t end) {
      for (std::size_t j = begin; j < end; ++j) {
        velocity[j] = mu * velocity[j] + gradient[j];
        params[j] -= lr * (nesterov ? gradient[j] + mu * velocity[j] : velocity[j]);
      }
    });
  }

 private:
  double learning_rate_;
  double momentum_;
  bool nesterov_;
  std::vector<Scalar> velocity_;
};

// Adam (Kingma & Ba 2015) with bias correction.
template <typename Scalar>
class Adam final : public Optimizer<Scalar> {
 public:
  explicit Adam(double learning_rate, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
      : learning_rate_(learning_rate), beta1_(beta1), beta2_(beta2), epsilon_(epsilon) {
    validate_positive("learning_rate", learning_rate);
    DPSGD_CHECK_ARG(std::isfinite(beta1) && beta1 >= 0.0 && beta1 < 1.0, "beta1 must be in [0, 1), got " << beta1);
    DPSGD_CHECK_ARG(std::isfinite(beta2) && beta2 >= 0.0 && beta2 < 1.0, "beta2 must be in [0, 1), got " << beta2);
    validate_positive("epsilon", epsilon);
  }
  std::string name() const override { return "adam"; }
  std::vector<double> state() const override {
    std::vector<double> s{static_cast<double>(steps_)};
    s.insert(s.end(), first_.begin(), first_.end());
    s.insert(s.end(), second_.begin(), second_.end());
    return s;
  }
  void set_state(const std::vector<double>& state) override {
    DPSGD_CHECK_ARG(state.size() % 2 == 1, "adam state must hold 1 + 2 P values, got " << state.size());
    const std::size_t p = (state.size() - 1) / 2;
    steps_ = static_cast<std::uint64_t>(state[0]);
    first_.assign(state.begin() + 1, state.begin() + 1 + static_cast<std::ptrdiff_t>(p));
    second_.assign(state.begin() + 1 + static_cast<std::ptrdiff_t>(p), state.end());
    this->size_ = p;
  }

 protected:
  void apply(std::span<Scalar> params, std::span<const Scalar> gradient) override {
    begin_update(params.size());
    apply_at(params, gradient, 0);
  }
  void begin_update(std::size_t total) override {
    if (first_.empty()) {
      first_.assign(total, Scalar{0});
      second_.assign(total, Scalar{0});
    }
    ++steps_;  // once per update, however many tensors
  }
  void apply_at(std::span<Scalar> params, std::span<const Scalar> gradient, std::size_t offset) override {
    const double correction1 = 1.0 - std::pow(beta1_, static_cast<double>(steps_));
    const double correction2 = 1.0 - std::pow(beta2_, static_cast<double>(steps_));
    const auto step_size =
        static_cast<Scalar>(learning_rate_ * this->learning_rate_factor_ * std::sqrt(correction2) / correction1);
    const auto b1 = static_cast<Scalar>(beta1_);
    const auto b2 = static_cast<Scalar>(beta2_);
    const auto eps = static_cast<Scalar>(epsilon_ * std::sqrt(correction2));
    Scalar* first = first_.data() + offset;
    Scalar* second = second_.data() + offset;
    detail::for_each_chunk(params.size(), [&](std::size_t begin, std::size_t end) {
      for (std::size_t j = begin; j < end; ++j) {
        first[j] = b1 * first[j] + (1 - b1) * gradient[j];
        second[j] = b2 * second[j] + (1 - b2) * gradient[j] * gradient[j];
        params[j] -= step_size * first[j] / (std::sqrt(second[j]) + eps);
      }
    });
  }

 private:
  double learning_rate_, beta1_, beta2_, epsilon_;
  std::uint64_t steps_ = 0;
  std::vector<Scalar> first_, second_;
};

}  // namespace dpsgd
