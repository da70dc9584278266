#!/usr/bin/env python3
"""Table and SVG plot of scripts/lm_budget_study.sh: test bits/char against batch size at a fixed budget."""
import json
import math
import pathlib
import sys


def svg_plot(points, path):
    """Bits/char (y) against log2 batch size (x), one polyline with labelled points; no dependencies."""
    width, height, left, right, top, bottom = 640, 360, 70, 30, 40, 50
    xs = [math.log2(b) for b, _ in points]
    ys = [y for _, y in points]
    y_lo, y_hi = min(ys) - 0.05, max(ys) + 0.05
    sx = lambda x: left + (x - min(xs)) / max(1e-9, max(xs) - min(xs)) * (width - left - right)
    sy = lambda y: top + (y_hi - y) / (y_hi - y_lo) * (height - top - bottom)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
             "font-size='12'><rect width='100%' height='100%' fill='white'/>",
             f"<text x='{left}' y='22' font-size='14'>Test bits/char at epsilon 3, fixed budget of 10 epochs</text>",
             f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='black'/>",
             f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='black'/>",
             "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='" +
             " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys)) + "'/>"]
    for (batch, y), x in zip(points, xs):
        parts.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='3' fill='#1f77b4'/>")
        parts.append(f"<text x='{sx(x):.1f}' y='{height - bottom + 16}' text-anchor='middle'>{batch}</text>")
        parts.append(f"<text x='{sx(x) + 6:.1f}' y='{sy(y) - 6:.1f}'>{y:.3f}</text>")
    parts.append(f"<text x='{(left + width - right) / 2}' y='{height - 12}' text-anchor='middle'>"
                 "expected batch size (log scale)</text>")
    parts.append("</svg>\n")
    pathlib.Path(path).write_text("\n".join(parts))


def main(directory):
    out = pathlib.Path(directory)
    plans = {round(p["batch_size"]): p for p in json.loads((out / "plan.json").read_text())["plans"]}
    print("| expected batch | steps | sigma | sigma / batch | test bits/char | wall s |")
    print("|---|---|---|---|---|---|")
    points = []
    for batch in sorted(plans):
        path = out / f"b{batch}.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        p = plans[batch]
        print(f"| {batch} | {m['steps']} | {m['noise_multiplier']:.3f} | {p['noise_batch_ratio']:.2e} | "
              f"{m['test_bits_per_char']:.3f} | {m['seconds']:.0f} |")
        points.append((batch, m["test_bits_per_char"]))
    if len(points) > 1:
        svg_plot(points, out / "budget.svg")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lm-budget")
