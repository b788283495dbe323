"""Optimizer update kernels: one parallel pass over a parameter and its state instead of a dozen numpy passes
(each a temporary array as large as the parameter, on one core).

No fastmath: every operation rounds in the parameter's dtype in the order numpy (and PyTorch's single-tensor
path) applies them, so the results are those of the elementwise numpy formula bit for bit.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def adam_update(x, g, m, v, v_max, scalars, flags):
    """One Adam step of x in place, m, v (and v_max) updated in place; all (size,) C-contiguous, g read only.

    ``scalars`` (x's dtype): decay factor ``1 - lr * weight_decay`` (decoupled), weight_decay (coupled), the
    lerp weight ``1 - beta1`` and ``1 - that``, beta2, ``1 - beta2``, ``sqrt(1 - beta2**t)``, eps and
    ``-lr / (1 - beta1**t)``. ``flags``: maximize, decoupled decay, coupled decay, lerp by ``m + w * (g - m)``
    (weight below 0.5, else ``g - (g - m) * (1 - w)``, PyTorch's choice), amsgrad (v_max used; else any array).
    """
    decay, weight_decay, w, one_minus_w, beta2, one_minus_beta2, bias2_sqrt, eps, neg_step = scalars
    maximize, decoupled, coupled, lerp_small, amsgrad = flags
    for i in prange(x.shape[0]):
        gi = -g[i] if maximize else g[i]
        xi = x[i]
        if decoupled:
            xi = xi * decay
        elif coupled:
            gi = gi + weight_decay * xi
        mi = m[i] + w * (gi - m[i]) if lerp_small else gi - (gi - m[i]) * one_minus_w
        vi = v[i] * beta2 + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            top = v_max[i]
            if top == top and (vi > top or vi != vi):  # np.maximum: a NaN on either side wins
                top = vi
            v_max[i] = top
            vi = top
        x[i] = xi + (neg_step * mi) / (np.sqrt(vi) / bias2_sqrt + eps)
