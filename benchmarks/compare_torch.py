#!/usr/bin/env python3
"""Side-by-side step times of LibTorch models: the non-private LibTorch step, the dpsgd::torch DP step,
PyTorch's non-private step and Opacus (ghost clipping and hooks), same shapes, one run.

Tooling only (the library has no Python). Usage, from the repository root after a Release build
(README's test command, or `cmake --build build --target bench_torch_step`):

    python3 benchmarks/compare_torch.py --venv build/opacus-venv --threads 1

The virtual environment is the one compare_opacus.py creates (torch and opacus from PyPI). Every
configuration runs in its own process, so each peak RSS belongs to one configuration; the median of
--repeats processes is kept. Models: the MLPs of docs/benchmarks.md (784-512-256-10 and
3072-1024-1024-10) and a pre-norm decoder block (byte tokens, d = 128, 64 tokens, one-head causal
attention of Linear layers, GELU MLP), defined identically here and in bench_torch_step.cpp.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_opacus import (WORKER_HEAD, WORKER_MLP, WORKER_PRIVATE, WORKER_TIMING,  # noqa: E402
                            ensure_venv, free_cores_probe, run_json)

MLPS = {"mlp": [784, 512, 256, 10], "mlp-wide": [3072, 1024, 1024, 10]}

# The PyTorch side, run as `python -c WORKER <json config>` inside the virtual environment.
WORKER = WORKER_HEAD + WORKER_MLP + r'''
class Block(nn.Module):
    def __init__(self, vocab, d):
        super().__init__()
        self.embed, self.norm1, self.norm2 = nn.Embedding(vocab, d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down, self.head = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.Linear(d, vocab)
    def forward(self, tokens):
        x = self.embed(tokens)
        h = self.norm1(x)
        t = tokens.shape[1]
        scores = self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(h.shape[2])
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        x = x + self.o(torch.softmax(scores.masked_fill(causal, -1e9), -1) @ self.v(h))
        x = x + self.down(torch.nn.functional.gelu(self.up(self.norm2(x))))
        return self.head(x)

class SeqLoss(nn.Module):  # Opacus ghost wraps the criterion: a module, not a lambda
    def forward(self, logits, target):
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

if config["model"] == "block":
    model, criterion = Block(256, config["width"]), SeqLoss()
    x = torch.randint(0, 256, (batch, config["seq"]))
    y = torch.randint(0, 256, (batch, config["seq"]))
else:
    model, x, y, criterion = build_mlp(config["sizes"], batch)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
''' + WORKER_PRIVATE + WORKER_TIMING


def median_of(runs):
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r["step_ms"])
    return good[len(good) // 2] if good else runs[0]


def hooks_memory_gib(model, batch, width, seq):
    # Opacus hooks keep one float32 gradient per example per parameter, and a clipped copy.
    if model == "block":
        params = 2 * 256 * width + 4 * (width * width + width) + 8 * width * width + 5 * width + 4 * width
    else:
        sizes = MLPS[model]
        params = sum(sizes[k] * sizes[k + 1] + sizes[k + 1] for k in range(len(sizes) - 1))
    return 2 * batch * params * 4 / 2**30


def measure(args, python, model, batch):
    threads = str(args.threads)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=threads)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(name, None)
    results = {}
    for mode in ("nonprivate", "dp"):
        command = [args.bin, "--model", model, "--batch", str(batch), "--mode", mode, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", threads, "--seq", str(args.seq),
                   "--width", str(args.width)]
        results[f"libtorch-{mode}"] = median_of([run_json(command, env, 900) for _ in range(args.repeats)])
    for variant in ("torch", "opacus-ghost", "opacus-hooks"):
        need = hooks_memory_gib(model, batch, args.width, args.seq)
        if variant == "opacus-hooks" and need > args.memory_limit_gib:
            results[variant] = {"error": f"not run: needs ~{need:.0f} GiB (> {args.memory_limit_gib:g})"}
            continue
        config = json.dumps({"model": model, "sizes": MLPS.get(model), "batch": batch, "variant": variant,
                             "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
                             "seq": args.seq, "width": args.width})
        results[variant] = median_of([run_json([python, "-c", WORKER, config], env, 900)
                                      for _ in range(args.repeats)])
    return results


def print_table(rows):
    print("| model | batch | run | step (ms) | samples/s | vs LibTorch non-private | dpsgd::torch DP faster by "
          "| peak RSS (MiB) | RSS vs non-private |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, batch, results in rows:
        base = results["libtorch-nonprivate"]
        dp = results["libtorch-dp"]
        for name in ("libtorch-nonprivate", "libtorch-dp", "torch", "opacus-ghost", "opacus-hooks"):
            r = results[name]
            if "error" in r:
                print(f"| {model} | {batch} | {name} | {r['error']} | | | | | |")
                continue
            own_base = base if name.startswith("libtorch") else results["torch"]
            ratio = f"{r['step_ms'] / own_base['step_ms']:.2f}x" if "step_ms" in own_base else "?"
            faster = f"{r['step_ms'] / dp['step_ms']:.1f}x" if "step_ms" in dp and name != "libtorch-dp" else ""
            rss = f"{r['peak_rss_mib'] / own_base['peak_rss_mib']:.2f}x" if "peak_rss_mib" in own_base else "?"
            print(f"| {model} | {batch} | {name} | {r['step_ms']:.2f} | {r['samples_per_s']:,.0f} | {ratio} | "
                  f"{faster} | {r['peak_rss_mib']:,.0f} | {rss} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default="build/opacus-venv", help="virtual environment for torch + opacus")
    parser.add_argument("--bin", default="build/bin/bench_torch_step")
    parser.add_argument("--configs", default="mlp:256,mlp:1024,mlp-wide:256,mlp-wide:1024,block:32",
                        help="model:batch pairs (models: mlp, mlp-wide, block)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="processes per configuration; the median is kept")
    parser.add_argument("--seq", type=int, default=64, help="block: tokens per example")
    parser.add_argument("--width", type=int, default=128, help="block: model width")
    parser.add_argument("--memory-limit-gib", type=float, default=16.0,
                        help="skip Opacus hooks where its per-example gradients would need more")
    parser.add_argument("--json-out", default="", help="also write every measurement here")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: build it with the README's test command, or\n"
                 "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2 --target bench_torch_step")
    configs = []
    for item in args.configs.split(","):
        model, _, batch = item.partition(":")
        if model not in ("block", *MLPS) or not batch.isdigit() or int(batch) < 1:
            sys.exit(f"--configs: {item!r} is not model:batch with a model of mlp, mlp-wide, block")
        configs.append((model, int(batch)))
    if min(args.threads, args.steps, args.repeats, args.seq, args.width) < 1 or args.warmup < 0:
        sys.exit("--threads, --steps, --repeats, --seq and --width must be >= 1, --warmup >= 0")
    python = ensure_venv(args.venv)
    free = free_cores_probe()
    print(f"free-core probe: 2 busy processes did {free:.2f}x the work of 1 "
          f"({'both cores free' if free > 1.8 else 'NOT both cores free: timings are suspect'})", flush=True)
    rows = []
    for model, batch in configs:
        rows.append((model, batch, measure(args, python, model, batch)))
        print(f"  done: {model} batch {batch}", flush=True)
    versions = {r.get("libtorch") or r.get("torch") for _, _, res in rows for r in res.values() if "error" not in r}
    print(f"\nversions: {sorted(v for v in versions if v)}, {args.threads} thread(s)\n")
    print_table(rows)
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump({"free_core_ratio": free, "threads": args.threads,
                       "rows": [{"model": m, "batch": b, "results": r} for m, b, r in rows]}, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
