"""Floors that spend the model's bits: estimators with no training that describe each category with at
most as many distinct codes as the model's codebooks allow (``prod(codebook_sizes)`` per category, 3 levels
x 32 codes = 15 bits in the `note` preset). Fitted on training rows only, seeded, no network or gradient anywhere.

- ``ResidualKMeans``: the model's own quantiser structure without the networks. Level l runs k-means with
  ``K_l`` codes on what the levels before it left over (residual), directly on the category's standardised
  features; a row's reconstruction is the sum of its nearest code per level, chosen greedily level by level
  as the model's residual quantisers choose theirs.
- ``PcaScalarQuantiser``: classical transform coding. PCA at the coarse level's size, then each coefficient
  gets its own scalar quantiser (1-D k-means, i.e. Lloyd-Max on the training coefficients, optimal in MSE
  for a scalar quantiser) with ``b_i`` bits, the bits handed out greedily one at a time to the coefficient
  whose quantised error drops most, until the budget ``floor(sum log2 K_l)`` is spent (``prod 2^b_i`` codes
  never exceed the model's ``prod K_l``). Scalar quantisation rather than vector k-means on the
  coefficients because the latter is nearly ``ResidualKMeans`` again; the scalar coder is the distinct,
  textbook way to spend a bit budget on a continuous transform.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def kmeans(x: np.ndarray, k: int, seed: int, n_init: int = 3) -> np.ndarray:
    """Shape: x [N, D] -> centroids [min(k, distinct rows), D]: scikit-learn's k-means (k-means++ seeding,
    Lloyd iterations, the best of ``n_init`` seeded restarts), on one thread so that results do not depend
    on the machine's core count and the shared cores stay free."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    uniq = np.unique(x, axis=0)
    if len(uniq) <= k:  # no more codes than points: every distinct row is its own code (exact)
        return uniq.astype(np.float64)
    with threadpool_limits(1):
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed, algorithm="lloyd").fit(x)
    return km.cluster_centers_.astype(np.float64)


def _sqdist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1, keepdims=True) - 2 * x @ c.T + (c * c).sum(1), 0.0)


def assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Shape: x [N, D], c [K, D] -> [N] index of the nearest centroid."""
    return np.argmin(_sqdist(x, c), 1)


@dataclass
class ResidualKMeans:
    """One category's residual codebooks, coarse to fine."""

    codebooks: list[np.ndarray]

    @classmethod
    def fit(cls, x: np.ndarray, ks: list[int], seed: int) -> "ResidualKMeans":
        """Shape: x [N, D] training rows of one category; ``ks`` codes per level."""
        r = np.asarray(x, dtype=np.float64)
        books = []
        for level, k in enumerate(ks):
            c = kmeans(r, int(k), seed * 1_000 + level)
            books.append(c)
            r = r - c[assign(r, c)]
        return cls(books)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Shape: x [N, D] -> codes [N, L], greedily per level on the running residual."""
        r = np.asarray(x, dtype=np.float64)
        codes = []
        for c in self.codebooks:
            a = assign(r, c)
            codes.append(a)
            r = r - c[a]
        return np.stack(codes, 1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Shape: codes [N, L] -> [N, D], the sum of each level's code."""
        return sum(c[codes[:, i]] for i, c in enumerate(self.codebooks))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))


def bit_budget(ks: list[int]) -> int:
    """Whole bits a scalar coder may spend per row so that its codes never outnumber ``prod(ks)``."""
    return int(math.floor(sum(math.log2(k) for k in ks) + 1e-9))


@dataclass
class PcaScalarQuantiser:
    """One category's PCA basis and per-coefficient scalar codebooks (levels sorted, 1 level = the mean)."""

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, d]
    levels: list[np.ndarray]  # per coefficient, sorted reconstruction values
    bits: list[int]

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int, bits: int, seed: int) -> "PcaScalarQuantiser":
        """Shape: x [N, D] training rows; ``n_components`` kept; ``bits`` spent per row over them."""
        x = np.asarray(x, dtype=np.float64)
        mu = x.mean(0)
        _, _, vh = np.linalg.svd(x - mu, full_matrices=False)
        v = vh[: min(n_components, x.shape[1])].T
        z = (x - mu) @ v
        cache: dict[tuple[int, int], tuple[np.ndarray, float]] = {}

        def coder(i: int, b: int) -> tuple[np.ndarray, float]:
            if (i, b) not in cache:
                lv = lloyd_1d(z[:, i], 2 ** b)
                cache[(i, b)] = lv, float(((z[:, i] - _nearest(z[:, i], lv)) ** 2).mean())
                # b bits can always do what b - 1 did: a worse local optimum of Lloyd is not kept
                if b > 0 and coder(i, b - 1)[1] < cache[(i, b)][1]:
                    cache[(i, b)] = coder(i, b - 1)
            return cache[(i, b)]

        alloc = [0] * z.shape[1]
        for _ in range(bits if z.shape[1] else 0):  # greedy: each bit where it removes the most error
            gain = [coder(i, b)[1] - coder(i, b + 1)[1] for i, b in enumerate(alloc)]
            alloc[int(np.argmax(gain))] += 1
        return cls(mu, v, [coder(i, b)[0] for i, b in enumerate(alloc)], alloc)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Shape: x [N, D] -> codes [N, d], each coefficient's level index."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) @ self.basis
        return np.stack([_index(z[:, i], lv) for i, lv in enumerate(self.levels)], 1).reshape(len(z), -1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Shape: codes [N, d] -> [N, D]."""
        z = np.stack([lv[codes[:, i]] for i, lv in enumerate(self.levels)], 1).reshape(len(codes), -1)
        return self.mean + z @ self.basis.T

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))


def lloyd_1d(z: np.ndarray, k: int, iters: int = 100) -> np.ndarray:
    """Shape: z [N] -> sorted levels [min(k, distinct values)]: the scalar MSE-optimal quantiser's fixed
    point (Lloyd-Max on the sample), started at the quantiles, so no seed is needed."""
    uniq = np.unique(z)
    if len(uniq) <= k:
        return uniq.astype(np.float64)
    lv = np.quantile(z, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        a = _index(z, lv)
        cnt = np.bincount(a, minlength=k)
        new = np.where(cnt > 0, np.bincount(a, weights=z, minlength=k) / np.maximum(cnt, 1), lv)
        new = np.sort(new)
        if np.allclose(new, lv, atol=1e-12, rtol=0):
            break
        lv = new
    return lv


def _index(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Nearest level of sorted ``levels`` for each value of ``z`` (midpoint search)."""
    if len(levels) == 1:
        return np.zeros(len(z), dtype=np.int64)
    return np.searchsorted((levels[1:] + levels[:-1]) / 2, z)


def _nearest(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return levels[_index(z, levels)]
