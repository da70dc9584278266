#!/usr/bin/env python3
"""Side-by-side step times: dpsgd (non-private, DP) against PyTorch and Opacus (hooks, ghost clipping).

Tooling only (the library has no Python). Usage, from the repository root after a Release build
with -DDPSGD_NATIVE=ON (see docs/benchmarks.md):

    python3 benchmarks/compare_opacus.py --venv build/opacus-venv

The first run creates the virtual environment and pip-installs torch and opacus into it (PyPI's
torch wheel pulls its CUDA libraries too: several GB). Every configuration runs in its own process,
so each peak RSS belongs to one configuration. The PyTorch processes run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from the environment (they can force slow kernels on this machine) and
with OMP_WAIT_POLICY=PASSIVE; the dpsgd processes get the same wait policy. A probe before the
table reports how many cores were really free.
"""
import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import venv

MODELS = {
    "logreg": [784, 10],
    "mlp": [784, 512, 256, 10],
    "mlp-wide": [3072, 1024, 1024, 10],
}

# The tail of every PyTorch worker (this script's and compare_torch.py's), after it has built `model`,
# `optimizer`, `criterion`, `x`, `y`, `batch`, `variant` and `config`: Opacus when asked for, then the
# timed steps and one line of JSON.
WORKER_PRIVATE = r'''
if variant != "torch":
    from opacus import PrivacyEngine
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    mode = "hooks" if variant == "opacus-hooks" else "ghost"
    made = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader, criterion=criterion,
                                        noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=False,
                                        grad_sample_mode=mode)
    model, optimizer = made[0], made[1]
    if mode == "ghost":
        criterion = made[2]
'''
WORKER_TIMING = r'''
times = []
for step in range(config["warmup"] + config["steps"]):
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    stop = time.perf_counter()
    if step >= config["warmup"]:
        times.append((stop - start) * 1000.0)
times.sort()
median = times[len(times) // 2]
print(json.dumps({
    "library": variant, "step_ms": median, "min_step_ms": times[0],
    "samples_per_s": 1000.0 * batch / median,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    "threads": torch.get_num_threads(),
    "torch": torch.__version__,
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "mkldnn": torch.backends.mkldnn.is_available(),
    "blas": next((part.strip() for part in torch.__config__.show().replace("\n", ",").split(",")
                  if part.strip().startswith("BLAS_INFO")), "BLAS_INFO=?"),
}))
'''

# The head of every PyTorch worker: the JSON config from argv, threads, seed.
WORKER_HEAD = r'''
import json, math, resource, sys, time, warnings
warnings.filterwarnings("ignore")
config = json.loads(sys.argv[1])
import torch
from torch import nn
torch.set_num_threads(config["threads"])
torch.manual_seed(0)
batch, variant = config["batch"], config["variant"]
'''

# The MLPs of docs/benchmarks.md: Linear layers of `sizes` with ReLU between them, uniform inputs.
WORKER_MLP = r'''
def build_mlp(sizes, batch):
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k + 2 < len(sizes):
            layers.append(nn.ReLU())
    x = torch.rand(batch, sizes[0]) * 2 - 1
    y = torch.arange(batch) % sizes[-1]
    return nn.Sequential(*layers), x, y, nn.CrossEntropyLoss()
'''

# The PyTorch side, run as `python -c TORCH_WORKER <json config>` inside the virtual environment.
TORCH_WORKER = WORKER_HEAD + WORKER_MLP + r'''
model, x, y, criterion = build_mlp(config["sizes"], batch)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
''' + WORKER_PRIVATE + WORKER_TIMING


def spin(seconds):
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1
    return count


def free_cores_probe():
    """Work done by 1 and by 2 busy processes in the same time: about 2x means two free cores."""
    with multiprocessing.Pool(2) as pool:
        one = pool.map(spin, [0.5])[0]
        two = sum(pool.map(spin, [0.5, 0.5]))
    return two / one


def ensure_venv(path):
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {path} and installing torch and opacus from PyPI (several GB) ...", flush=True)
        try:
            venv.create(path, with_pip=True)
        except Exception as error:  # Debian's python3 needs the python3-venv package for ensurepip
            sys.exit(f"could not create the virtual environment {path}: {error}\n"
                     "on Debian: apt-get install python3-venv, then run this script again")
    check = subprocess.run([python, "-c", "import torch, opacus"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "torch", "opacus"], check=True)
    return python


def run_json(command, env, timeout):
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {done.returncode}: {tail[0][:120]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def hooks_memory_estimate_gib(sizes, batch):
    # Opacus hooks keep one gradient per example per parameter (float32), and clipping makes a
    # second copy of the same size: about 2 x B x P x 4 bytes.
    params = sum(sizes[k] * sizes[k + 1] + sizes[k + 1] for k in range(len(sizes) - 1))
    return 2 * batch * params * 4 / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default="build/opacus-venv", help="virtual environment for torch + opacus")
    parser.add_argument("--dpsgd-bin", default="build/bin/bench_training_step")
    parser.add_argument("--models", default="logreg,mlp,mlp-wide")
    parser.add_argument("--batches", default="256,1024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="processes per configuration; the median is kept")
    parser.add_argument("--memory-limit-gib", type=float, default=16.0,
                        help="skip Opacus hooks where its per-example gradients would need more")
    parser.add_argument("--json-out", default="", help="also write every measurement here")
    args = parser.parse_args()

    if not os.access(args.dpsgd_bin, os.X_OK):
        sys.exit(f"{args.dpsgd_bin} not found: build it first with\n"
                 "  bash scripts/install-deps.sh && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && "
                 "cmake --build build -j2 --target bench_training_step")
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        sys.exit(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        sys.exit(f"--batches must be comma-separated integers, got {args.batches!r}")
    if any(b < 1 for b in batches) or args.threads < 1 or args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        sys.exit("--batches, --threads, --steps and --repeats must be >= 1, --warmup >= 0")
    python = ensure_venv(args.venv)
    free = free_cores_probe()
    print(f"free-core probe: 2 busy processes did {free:.2f}x the work of 1 "
          f"({'both cores free' if free > 1.8 else 'NOT both cores free: timings are suspect'})")

    torch_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args.threads))
    removed = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if torch_env.pop(name, None) is not None]
    print(f"PyTorch runs with {', '.join(removed) if removed else 'no OPENBLAS_* overrides'} removed from the environment")
    dpsgd_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args.threads))

    def median_of(runs):
        good = [r for r in runs if "error" not in r]
        if not good:
            return runs[0]
        good.sort(key=lambda r: r["step_ms"])
        return good[len(good) // 2]

    rows, everything, kernels = [], [], None
    for model in args.models.split(","):
        sizes = MODELS[model]
        for batch in batches:
            results = {}
            for mode in ("nonprivate", "dp"):
                command = [args.dpsgd_bin, "--model", model, "--batch", str(batch), "--mode", mode,
                           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
                results[f"dpsgd-{mode}"] = median_of([run_json(command, dpsgd_env, 600) for _ in range(args.repeats)])
            for variant in ("torch", "opacus-ghost", "opacus-hooks"):
                if variant == "opacus-hooks" and hooks_memory_estimate_gib(sizes, batch) > args.memory_limit_gib:
                    estimate = hooks_memory_estimate_gib(sizes, batch)
                    results[variant] = {"error": f"not run: needs ~{estimate:.0f} GiB (> {args.memory_limit_gib:g})"}
                    continue
                steps = args.steps if variant != "opacus-hooks" else max(2, args.steps // 3)
                config = json.dumps({"sizes": sizes, "batch": batch, "variant": variant, "threads": args.threads,
                                     "steps": steps, "warmup": 1 if variant == "opacus-hooks" else args.warmup})
                repeats = 1 if variant == "opacus-hooks" else args.repeats
                results[variant] = median_of([run_json([python, "-c", TORCH_WORKER, config], torch_env, 900)
                                              for _ in range(repeats)])
                if kernels is None and "error" not in results[variant]:
                    kernels = results[variant]
            everything.append({"model": model, "batch": batch, "results": results})
            rows.append((model, batch, results))
            print(f"  done: {model} batch {batch}", flush=True)

    if kernels:
        print(f"\nPyTorch {kernels['torch']}, CPU capability {kernels['cpu_capability']}, "
              f"oneDNN {'on' if kernels['mkldnn'] else 'off'}, {kernels['blas']}, {kernels['threads']} threads")
    print(f"dpsgd noise kernel: {results['dpsgd-dp'].get('noise_kernel', '?')}, "
          f"{results['dpsgd-dp'].get('threads', '?')} OpenMP threads\n")
    print("| model | batch | run | step (ms) | samples/s | vs own non-private | dpsgd DP faster by | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for model, batch, results in rows:
        dp_ms = results["dpsgd-dp"].get("step_ms")
        for name, base in (("dpsgd-nonprivate", "dpsgd-nonprivate"), ("dpsgd-dp", "dpsgd-nonprivate"),
                           ("torch", "torch"), ("opacus-ghost", "torch"), ("opacus-hooks", "torch")):
            r = results[name]
            if "error" in r:
                print(f"| {model} | {batch} | {name} | {r['error']} | | | | |")
                continue
            base_ms = results[base].get("step_ms")
            ratio = f"{r['step_ms'] / base_ms:.2f}x" if base_ms else "?"
            faster = f"{r['step_ms'] / dp_ms:.1f}x" if dp_ms and not name.startswith("dpsgd") else ""
            print(f"| {model} | {batch} | {name} | {r['step_ms']:.2f} | {r['samples_per_s']:,.0f} | {ratio} | "
                  f"{faster} | {r['peak_rss_mib']:,.0f} |")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump({"free_core_ratio": free, "rows": everything}, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
