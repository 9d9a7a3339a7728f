#!/usr/bin/env python3
"""Writes data/sample_embeddings.npy: 1000 x 384 float32 rows that look like sentence embeddings
(a few shared directions plus noise, with row norms spread over roughly 0.5 to 20), deterministic
for a given NumPy version. Run from anywhere: python3 data/make_sample.py"""

import pathlib

import numpy as np

ROWS, DIM, TOPICS, SEED = 1000, 384, 16, 20240601


def make_embeddings() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    topics = rng.standard_normal((TOPICS, DIM))
    weights = rng.dirichlet(np.full(TOPICS, 0.3), size=ROWS)
    rows = weights @ topics + 0.25 * rng.standard_normal((ROWS, DIM))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows *= rng.lognormal(mean=1.0, sigma=0.8, size=(ROWS, 1))
    return rows.astype("<f4")


def main() -> None:
    path = pathlib.Path(__file__).resolve().parent / "sample_embeddings.npy"
    np.save(path, make_embeddings())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
