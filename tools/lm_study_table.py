#!/usr/bin/env python3
"""Prints the markdown table of docs/language_models.md from the metrics JSONs of scripts/lm_study.sh."""
import json
import pathlib
import sys

ROWS = [("pretrain", "non-private pretraining (public cookies)")] + [
    (f"{kind}-{privacy}", f"{label}, {privacy.replace('eps', 'epsilon ')}")
    for kind, label in [("scratch", "from scratch"), ("full", "fine-tune all"),
                        ("bias", "fine-tune biases (DP-BiTFiT)"), ("last", "fine-tune last layer")]
    for privacy in ["eps1", "eps3", "eps8", "nonprivate"]]


def main(directory):
    out = pathlib.Path(directory)
    print("| run | test bits/char | epsilon (delta 1e-5) | steps | sigma | wall s | s/step | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label in ROWS:
        path = out / f"{name}.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        eps = "-" if m["epsilon"] is None else f"{m['epsilon']:.3f}"
        print(f"| {label} | {m['test_bits_per_char']:.3f} | {eps} | {m['steps']} | {m['noise_multiplier']:.3f} | "
              f"{m['seconds']:.0f} | {m['seconds_per_step']:.3f} | {m['peak_memory_mb']:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lm-study")
