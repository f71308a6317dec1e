#!/usr/bin/env python3
"""Make tests/fixtures/logme.json: a small fixed feature matrix, labels, and the LogME value
computed with the fixed-point algorithm of You et al. (2021), "Ranking and Tuning Pre-trained
Models: A New Paradigm for Exploiting Model Hubs" (the `_fit_fixed_point` method of the authors'
LogME package), written out here in numpy step by step from the paper's update rules.

Run: python3 -m venv .venv-logme && .venv-logme/bin/pip install numpy==2.* &&
     .venv-logme/bin/python scripts/make-logme-fixture.py
The matrix is built from a formula (no RNG), so it is the same on every machine.
"""
import json
import math
import os

import numpy as np

N, D, C = 40, 6, 3
i = np.arange(N)[:, None]
j = np.arange(D)[None, :]
f = np.sin(0.37 * i * (j + 1) + 0.11 * j) + 0.05 * np.cos(1.3 * i + j)
y = (i[:, 0] * 7 + 3) % C
# Make the features informative: shift each class along one axis.
f[:, 0] += 0.8 * (y == 0)
f[:, 1] += 0.6 * (y == 1)
f = f.astype(np.float32)


def logme_fixed_point(f, y):
    f = f.astype(np.float64)
    n, d = f.shape
    # Thin SVD of F: F = U diag(s) Vh.
    u, s, vh = np.linalg.svd(f, full_matrices=False)
    keep = s > 1e-10
    u, s = u[:, keep], s[keep]
    sigma = s ** 2
    evidences = []
    for c in range(int(y.max()) + 1):
        t_y = (y == c).astype(np.float64)
        x = u.T @ t_y
        x2 = x ** 2
        res_x2 = (t_y ** 2).sum() - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / (t + sigma) ** 2).sum()
            res2 = (x2 / (1 + sigma / t) ** 2).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        ev = (d / 2 * math.log(alpha) + n / 2 * math.log(beta)
              - 0.5 * np.log(alpha + beta * sigma).sum()
              - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
        evidences.append(ev / n)
    return float(np.mean(evidences))


value = logme_fixed_point(f, y)
out = {
    "about": "LogME fixture: see scripts/make-logme-fixture.py",
    "n": N, "d": D, "n_classes": C,
    "features": f.tolist(),
    "labels": [int(v) for v in y],
    "logme": value,
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "logme.json")
with open(path, "w") as fh:
    json.dump(out, fh)
print(f"logme = {value:.12f} -> {os.path.normpath(path)}")
