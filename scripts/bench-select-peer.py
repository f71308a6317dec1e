"""One peer (scikit-activeml) case for scripts/bench-select.sh; prints one JSON line.

Usage: bench-select-peer.py EXPORT_DIR STRATEGY BATCH POOL_ROWS
STRATEGY: proxy-fit | least-confidence | margin | entropy | coreset | badge
Timed: the peer's query call (or scikit-learn's LogisticRegression fit for proxy-fit) only;
loading the exported arrays is not.
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ex, strategy, K, N = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cand = np.load(ex / "candidates.npy")
lab = np.load(ex / "labelled.npy")
labels = np.load(ex / "labels.npy")
n = len(cand) + len(lab)
y = np.full(n, np.nan)
y[lab] = labels
out = {"strategy": strategy, "pool_rows": N, "batch": K}


def features():
    return np.load(ex / "X.npy")


if strategy == "proxy-fit":
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = features()
    t = time.time()
    sc = StandardScaler().fit(X[lab])
    LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(X[lab]), labels)
    out["peer_seconds"] = time.time() - t
    out["what"] = "scikit-learn LogisticRegression(C=1, lbfgs, tol=1e-4) on the standardised 10K labelled rows"
else:
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.pool import Badge, CoreSet, UncertaintySampling

    class FixedProba(SkactivemlClassifier):
        def __init__(self, P=None, classes=None, missing_label=np.nan, random_state=None):
            super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)
            self.P = P

        def fit(self, X, y, sample_weight=None):
            self.classes_ = np.arange(self.P.shape[1])
            return self

        def predict_proba(self, X, return_embeddings=False):
            X = np.asarray(X)
            p = self.P[X[:, -1].astype(int)]
            if return_embeddings:
                return p, X[:, :-1]
            return p

    if strategy in ("least-confidence", "margin", "entropy", "badge"):
        P = np.load(ex / "proba.npy")
        Pfull = np.full((n, P.shape[1]), 1.0 / P.shape[1], dtype=np.float32)
        Pfull[cand] = P
        del P
        clf = FixedProba(P=Pfull, classes=np.arange(Pfull.shape[1])).fit(None, None)
    ids = np.arange(n, dtype=np.float64)[:, None]
    if strategy in ("least-confidence", "margin", "entropy"):
        method = {"least-confidence": "least_confident", "margin": "margin_sampling", "entropy": "entropy"}[strategy]
        t = time.time()
        picks = UncertaintySampling(method=method, random_state=0).query(ids, y, clf, fit_clf=False, batch_size=K)
        out["peer_seconds"] = time.time() - t
        mine = ex / f"picks-{strategy}.npy"
        if mine.exists():
            np.save(ex / f"peer-picks-{strategy}.npy", np.asarray(picks))
            ours, theirs = set(np.load(mine).tolist()), set(np.asarray(picks).tolist())
            out["same_rows_as_proxal"] = ours == theirs
            out["rows_in_common_with_proxal"] = len(ours & theirs)
    elif strategy == "coreset":
        X = features()
        t = time.time()
        CoreSet(random_state=0).query(X, y, batch_size=K)
        out["peer_seconds"] = time.time() - t
    elif strategy == "badge":
        X = np.hstack([features(), ids.astype(np.float32)])
        t = time.time()
        try:
            Badge(random_state=0, clf_embedding_flag_name="return_embeddings").query(
                X, y, clf, fit_clf=False, batch_size=K
            )
            out["peer_seconds"] = time.time() - t
        except MemoryError:
            out["peer_seconds"] = None
            need = len(cand) * Pfull.shape[1] * (X.shape[1] - 1) * 4
            out["reason"] = (
                f"out of memory after {time.time() - t:.1f} s: the explicit gradient embeddings need "
                f"{need / 1e9:.0f} GB (n × C·d float32), over the address-space cap"
            )
out["peer_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
