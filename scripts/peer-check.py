"""Compare proxal's selections with scikit-activeml on the same features and probabilities.

Usage: peer-check.py EXPORT_DIR K SEED PEER_VERSION   (run by scripts/peer-check.sh)
Prints a markdown report.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import skactiveml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from skactiveml.base import SkactivemlClassifier
from skactiveml.pool import Badge, CoreSet, UncertaintySampling

ex = Path(sys.argv[1])
K = int(sys.argv[2])
SEED = int(sys.argv[3])

X = np.load(ex / "X.npy")
cand = np.load(ex / "candidates.npy")
lab = np.load(ex / "labelled.npy")
labels = np.load(ex / "labels.npy")
P = np.load(ex / "proba.npy")
n, d = X.shape
C = P.shape[1]
y = np.full(n, np.nan)
y[lab] = labels
Pfull = np.full((n, C), 1.0 / C, dtype=np.float32)
Pfull[cand] = P
# The peer sees the features plus a row-id column; the fixed classifier below reads the id to
# return proxal's probabilities, and hands back the plain features as BADGE's embedding.
Xaug = np.hstack([X.astype(np.float64), np.arange(n, dtype=np.float64)[:, None]])


class FixedProba(SkactivemlClassifier):
    """A 'classifier' that returns precomputed probabilities (proxal's) for each row id."""

    def __init__(self, P=None, classes=None, missing_label=np.nan, random_state=None):
        super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)
        self.P = P

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.arange(self.P.shape[1])
        return self

    def predict_proba(self, X, return_embeddings=False):
        X = np.asarray(X)
        p = self.P[X[:, -1].astype(int)].astype(np.float64)
        if return_embeddings:
            return p, X[:, :-1]
        return p


clf = FixedProba(P=Pfull, classes=np.arange(C)).fit(Xaug, y)
out = []
w = out.append
w("# Peer check: proxal vs scikit-activeml\n")
w(
    f"Peer: scikit-activeml {skactiveml.__version__} (scikit-learn {sklearn.__version__}, numpy "
    f"{np.__version__}), in `.venv-peer/`. Data: synthetic Gaussian mixture, {n} rows × {d} dims, "
    f"{C} classes, {len(lab)} labelled, {len(cand)} candidates; batch k = {K}. The peer gets "
    "proxal's exported features and proxal's probabilities (through a fixed-probability "
    "classifier), so any difference is in the selection code.\n"
)
w(
    "Regenerate: `make peer-check` (`scripts/peer-check.sh`). Run on "
    + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    + f" (UTC); {os.cpu_count()} cores; load average (1, 5, 15 min) "
    + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    + " (correctness checks: nothing here is timed).\n"
)
w("| check | proxal | scikit-activeml | result |")
w("|---|---|---|---|")
all_ok = True


def verdict(ok):
    global all_ok
    all_ok &= bool(ok)
    return "**same**" if ok else "**DIFFERENT**"


for ours, method in [
    ("least-confidence", "least_confident"),
    ("margin", "margin_sampling"),
    ("entropy", "entropy"),
]:
    mine = np.load(ex / f"picks-{ours}.npy")
    qs = UncertaintySampling(method=method, random_state=SEED)
    peer = np.asarray(qs.query(Xaug, y, clf, fit_clf=False, batch_size=K))
    same_set = set(mine.tolist()) == set(peer.tolist())
    same_order = mine.tolist() == peer.tolist()
    w(
        f"| {ours}: top-{K} rows | {mine[:5].tolist()}… | {peer[:5].tolist()}… | "
        f"set {verdict(same_set)}, order {'same' if same_order else 'differs'} |"
    )

mine = np.load(ex / "picks-coreset.npy")
peer = np.asarray(CoreSet(random_state=SEED).query(X.astype(np.float64), y, batch_size=K))
w(
    f"| core-set greedy (from the labelled set) | {mine[:5].tolist()}… | {peer[:5].tolist()}… | "
    f"sequence {verdict(mine.tolist() == peer.tolist())} |"
)

# BADGE with the peer's own random draws: numpy RandomState(SEED).random_sample, one per centre.
mine = np.load(ex / "picks-badge-reference.npy")
peer = np.asarray(
    Badge(random_state=SEED, clf_embedding_flag_name="return_embeddings").query(
        Xaug, y, clf, fit_clf=False, batch_size=K
    )
)
w(
    f"| BADGE k-means++, same uniform draws (reference path) | {mine[:5].tolist()}… | "
    f"{peer[:5].tolist()}… | sequence {verdict(mine.tolist() == peer.tolist())} |"
)

# BADGE fast path (rejection sampling, own RNG): equal expected quality over 20 seeds.
Q = P - np.eye(C)[P.argmax(1)]
Xc = X[cand].astype(np.float64)
G = (Q[:, :, None] * Xc[:, None, :]).reshape(len(cand), -1)
pos = {r: i for i, r in enumerate(cand.tolist())}
g2 = (G**2).sum(1)


def quality(rows):
    idx = np.array([pos[r] for r in rows])
    Gc = G[idx]
    d2 = np.maximum(g2[:, None] + (Gc**2).sum(1)[None, :] - 2 * G @ Gc.T, 0)
    cost = np.minimum(d2.min(1), g2).sum()  # the origin counts as a centre, as in the peer
    pd = np.sqrt(np.maximum((Gc**2).sum(1)[:, None] + (Gc**2).sum(1)[None, :] - 2 * Gc @ Gc.T, 0))
    mean_pair = pd[np.triu_indices(len(idx), 1)].mean()
    return cost, mean_pair


fast = np.array([quality(np.load(ex / f"picks-badge-fast-{s}.npy").tolist()) for s in range(20)])
peer_q = []
t = time.time()
for s in range(20):
    pk = Badge(random_state=1000 + s, clf_embedding_flag_name="return_embeddings").query(
        Xaug, y, clf, fit_clf=False, batch_size=K
    )
    peer_q.append(quality(np.asarray(pk).tolist()))
peer_q = np.array(peer_q)
ratio = fast[:, 0].mean() / peer_q[:, 0].mean()
w(
    f"| BADGE fast path (rejection sampling, own RNG), 20 seeds each: k-means cost in gradient "
    f"space, mean ± sd | {fast[:, 0].mean():.4g} ± {fast[:, 0].std():.2g} | "
    f"{peer_q[:, 0].mean():.4g} ± {peer_q[:, 0].std():.2g} | ratio {ratio:.3f} "
    f"({verdict(abs(ratio - 1) < 0.05)} within 5%) |"
)
ratio2 = fast[:, 1].mean() / peer_q[:, 1].mean()
w(
    f"| … mean pairwise distance of the picks | {fast[:, 1].mean():.4g} | {peer_q[:, 1].mean():.4g} "
    f"| ratio {ratio2:.3f} ({verdict(abs(ratio2 - 1) < 0.05)} within 5%) |"
)

# The proxy itself: scikit-learn's multinomial LogisticRegression (C=1, lbfgs, tight tolerance)
# on the standardised labelled rows minimises the same objective as proxal's logreg.
sc = StandardScaler().fit(X[lab])
lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000).fit(sc.transform(X[lab]), labels)
Ps = lr.predict_proba(sc.transform(X[cand]))
diff = np.abs(Ps - P)
agree = (Ps.argmax(1) == P.argmax(1)).mean()
w(
    f"| proxy probabilities vs scikit-learn LogisticRegression(C=1) on the same standardised rows | "
    f"— | — | max abs diff {diff.max():.2e}, mean {diff.mean():.1e}, argmax agreement {agree:.4f} "
    f"({verdict(diff.max() < 2e-3)} to 2e-3) |"
)
w("")
w(
    "Notes: least-confidence, margin and entropy are compared as sets (the peer breaks exact ties "
    "at random; proxal by lower row). Core-set starts from the same labelled set, so the greedy "
    "sequence is deterministic in both. The BADGE reference path feeds proxal the uniforms the "
    "peer's `RandomState.choice` consumes (first centre = largest gradient norm, no draw); proxal's "
    "default fast path draws exactly D²-proportional centres by rejection sampling from its own "
    "ChaCha8 stream, so it is compared on quality (k-means cost, and the mean pairwise distance "
    "of the picks, in gradient-embedding space, over 20 seeds each). scikit-activeml's BADGE "
    "initialises every row's D² with its squared gradient norm, i.e. treats the origin as a "
    "centre; the original BADGE code does not. proxal's default follows the original; both BADGE "
    "rows above run proxal with `origin_centre = true` (`--badge-origin`) to compare like with like."
)
w("")
w(f"Overall: {'all checks agree' if all_ok else 'SOME CHECKS DIFFER'}.")
print("\n".join(out))
