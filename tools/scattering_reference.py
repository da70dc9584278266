#!/usr/bin/env python3
"""Reference values for tests/features_test.cpp: Kymatio's 2-D scattering (J=2, L=8, second order)
of three fixed 28 x 28 images, written to tests/data/scattering_kymatio.json.

Tooling only (pip install kymatio==0.3.0 numpy "scipy<1.15": newer SciPy lacks the sph_harm Kymatio imports). Kymatio normalises its Gabor filters with
3.1415 in place of pi; the transform is positively homogeneous in the filters' scale (|c z| = c |z|
for c > 0), and an order-m coefficient passes through m + 1 filters (m wavelets and the low pass),
so with exact pi it is Kymatio's times (3.1415 / pi)^(m + 1).
The values written are rescaled that way, to match dpsgd::Scattering2D's exact pi.
Usage: python3 tools/scattering_reference.py [OUT_JSON]
"""
import json
import math
import sys

import kymatio
import numpy as np
from kymatio.numpy import Scattering2D


def images():
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64)
    # a bar with a sharp edge and a smooth bump: oriented structure at two scales
    bar = ((cols > 9) & (cols < 14) & (rows > 4)).astype(np.float64)
    bump = np.exp(-((rows - 18.0) ** 2 + (cols - 20.0) ** 2) / 18.0)
    shapes = 0.7 * bar + bump
    waves = 0.5 + 0.5 * np.sin(0.9 * rows + 0.4 * cols) * np.cos(0.3 * rows)
    noise = np.random.default_rng(20261203).uniform(0.0, 1.0, size=(28, 28))
    return {"shapes": shapes, "waves": waves, "noise": noise}


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/scattering_kymatio.json"
    scattering = Scattering2D(J=2, shape=(28, 28), L=8, max_order=2)
    scale = 3.1415 / math.pi
    # channel order of Kymatio's array output: S0, then 16 S1, then 64 S2
    order = np.array([0] + [1] * 16 + [2] * 64)
    result = {"source": f"kymatio {kymatio.__version__} Scattering2D(J=2, shape=(28, 28), L=8, max_order=2), "
                        "numpy frontend, rescaled to exact pi by (3.1415/pi)^(order+1)",
              "images": {}}
    for name, image in images().items():
        coefficients = scattering(image.astype(np.float32)).astype(np.float64)  # (81, 7, 7)
        coefficients *= (scale ** (order + 1))[:, None, None]
        result["images"][name] = {"pixels": image.ravel().tolist(),
                                  "channels_hw": coefficients.ravel().tolist()}
    with open(out_path, "w") as f:
        json.dump(result, f)
    print(f"wrote {out_path}: {len(result['images'])} images x {coefficients.size} coefficients")


if __name__ == "__main__":
    main()
