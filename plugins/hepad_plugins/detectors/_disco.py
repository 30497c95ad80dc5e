"""Weighted distance correlation (Székely, Rizzo, Bakirov 2007) in torch, for DisCo losses.

DisCo (Kasieczka, Shih, PRL 125 (2020) 122001, arXiv:2001.05310) decorrelates a
score from a protected variable (here ``mjj``) by adding ``alpha * dCor^2`` to
the loss. ``dCor^2`` is differentiable and is 0 exactly for independent
variables (in the large-sample limit), 1 for linearly related ones.

Weights act as event multiplicities: an event of weight 2 counts like two
copies of it (so integer weights reproduce the unweighted statistic on the
duplicated sample). With equal weights this is the usual V-statistic, the
same as ``dcor.distance_correlation(x, y) ** 2``.

Cost: O(n^2) memory and time; call it on minibatches.
"""

from __future__ import annotations

import torch


def _dcov_terms(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Squared distance covariance of the distance matrices ``a``, ``b`` under event probabilities ``p``.

    Uses dCov^2 = E[a b] + E[a] E[b] - 2 E_i[a_i. b_i.] (pairs drawn with
    probabilities p_i p_j), which needs no doubly centred n x n matrices:
    fewer n^2 temporaries than the textbook form, the cost that matters in
    a training loop.
    """
    row_a, row_b = a @ p, b @ p  # a_i. = sum_j p_j a_ij
    return p @ ((a * b) @ p) + (p @ row_a) * (p @ row_b) - 2.0 * (p * row_a * row_b).sum()


def distance_correlation_sq(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None,
                            eps: float = 1e-12) -> torch.Tensor:
    """Squared distance correlation R^2(x, y) of two 1-d samples, optionally weighted.

    Returns a 0-d tensor in [0, 1] (up to rounding), differentiable in ``x`` and ``y``.
    """
    x, y = x.reshape(-1), y.reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
    if weight is None:
        p = torch.full_like(x, 1.0 / x.shape[0])
    else:
        w = weight.reshape(-1).to(x.dtype)
        p = w / w.sum().clamp_min(eps)
    a = (x[:, None] - x[None, :]).abs()
    b = (y[:, None] - y[None, :]).abs()
    dcov_xy = _dcov_terms(a, b, p)
    dvar_x = _dcov_terms(a, a, p)
    dvar_y = _dcov_terms(b, b, p)
    return dcov_xy / torch.sqrt((dvar_x * dvar_y).clamp_min(eps))


def distance_correlation(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Distance correlation R(x, y) (the square root of :func:`distance_correlation_sq`)."""
    return distance_correlation_sq(x, y, weight).clamp_min(0.0).sqrt()
