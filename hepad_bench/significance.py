"""Counting significance with an uncertain background: Cousins-Linnemann-Tucker Z_Bi.

Shared by the sideband-fit readout (a plugin metric) and the sliding-window
search's template calibration (core).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betainc
from scipy.stats import norm, poisson


def z_bi(n_on: float, b: float, sigma_b: float) -> tuple[float, float]:
    """(p, Z) of observing >= n_on events over a background b +- sigma_b (Cousins-Linnemann-Tucker Z_Bi).

    Poisson counting with the background uncertainty as an auxiliary
    measurement, tau = b / sigma_b^2 (NIM A 595 (2008) 480):
    p = I_{1/(1+tau)}(n_on, tau b + 1), the regularised incomplete beta
    function; Z = Phi^-1(1 - p), one-sided, 0 for a deficit.
    sigma_b = 0: the plain Poisson p-value P(N >= n_on | b).
    """
    if n_on <= 0:
        return 1.0, 0.0
    if sigma_b <= 0:
        p = float(poisson.sf(np.ceil(n_on) - 1, b))
    else:
        tau = b / sigma_b**2
        p = float(betainc(n_on, tau * b + 1.0, 1.0 / (1.0 + tau)))
    return p, max(0.0, float(norm.isf(p)))
