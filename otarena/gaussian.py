"""Closed-form optimal transport between Gaussians (the linear baseline [L])."""

from __future__ import annotations

import numpy as np


def psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (float64)."""
    a = 0.5 * (a + a.T)
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def ot_map(mean_p, cov_p, mean_q, cov_q) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) with x -> W x + b the W2-optimal map from N(mean_p, cov_p) to N(mean_q, cov_q).

    W = S_p^{-1/2} (S_p^{1/2} S_q S_p^{1/2})^{1/2} S_p^{-1/2}, b = m_q - W m_p.
    """
    root = psd_sqrt(np.asarray(cov_p, np.float64))
    inv_root = np.linalg.inv(root)
    w = inv_root @ psd_sqrt(root @ np.asarray(cov_q, np.float64) @ root) @ inv_root
    w = 0.5 * (w + w.T)
    return w, np.asarray(mean_q, np.float64) - w @ np.asarray(mean_p, np.float64)
