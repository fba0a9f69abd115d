r"""Jacobi elliptic functions and the incomplete integral of the first kind, accurate up to the separatrix.

The closed forms of the pendulum and the Duffing oscillator are Jacobi elliptic functions of parameter
:math:`m = k^2`. Near a separatrix :math:`m \to 1`, and everything there depends on the complementary parameter
:math:`m_c = 1 - m = k'^2`, which the physics gives directly (from the energy) and which ``1 - m`` would
round away: for :math:`\theta_0 = \pi - 10^{-6}`, :math:`k'^2 = 2.5\times10^{-13}` holds three significant digits
in ``1 - m``. Every function here therefore takes *both* ``m`` and ``mc``, computed by the caller without
cancellation.

SciPy's ``ellipj(u, m)`` derives :math:`k'` from ``m``, and for :math:`1 - m < 10^{-9}` switches to a first-order
expansion that is wrong beyond a quarter period (errors of 1e-11 at :math:`m_c = 2.5\times10^{-13}`; measured
against mpmath at 40 digits). Here:

* ``u`` is reduced by the period :math:`4K` and by the reflections :math:`sn(2K - u) = sn\,u`,
  :math:`cn(2K - u) = -cn\,u` into :math:`[0, K]`, and then into :math:`w \in [0, K/2]` by the quarter-period
  shift :math:`sn(K - w) = cn\,w/dn\,w`, :math:`cn(K - w) = k'\,sn\,w/dn\,w`, :math:`dn(K - w) = k'/dn\,w`
  (which keeps :math:`cn` and :math:`dn` accurate where they are as small as :math:`k'`);
* at :math:`w \le K/2` the functions come from the arithmetic–geometric mean started at :math:`b_0 = k'` (the
  descending Landen transformation, A&S 16.4), or, where :math:`m_c e^{2w} < 10^{-8}`, from the expansion about
  :math:`m = 1` (A&S 16.15), whose next term is below :math:`(m_c e^{2w})^2 < 10^{-16}`;
* :math:`K = ` ``ellipkm1(mc)``, and :math:`F(\varphi\,|\,m) = \sin\varphi\,R_F(\cos^2\varphi,
  \mathrm{dn}^2, 1)` (Carlson), with :math:`\mathrm{dn}^2 = 1 - m\sin^2\varphi` supplied by the caller.

Measured against mpmath over :math:`u \in [0, K]`: at most 3e-14 for :math:`m_c \ge 2.5\times10^{-13}` and
1.3e-12 at :math:`m_c = 10^{-20}` (``tests/simulators/test_elliptic.py`` checks the identities and the
closed forms that use them against DOP853).
"""

from __future__ import annotations

import numpy as np
from scipy.special import elliprf, ellipkm1

__all__ = ["complete_k", "incomplete_f", "jacobi"]

_EPS = np.finfo(float).eps
#: Below this m_c e^{2w} the expansion about m = 1 is used (its error is about the square of it).
_NEAR_ONE = 1e-8


def complete_k(mc) -> np.ndarray:
    """K(m) from the complementary parameter ``mc = 1 - m`` (infinite at ``mc = 0``)."""
    with np.errstate(divide="ignore"):
        return ellipkm1(np.asarray(mc, dtype=np.float64))


def incomplete_f(sn, cn, dn2, mc) -> np.ndarray:
    r"""u with amplitude φ (``sin φ = sn``, ``cos φ = cn``, ``dn2 = 1 − m sin²φ``), in (−2K, 2K].

    That is :math:`F(\varphi\,|\,m)` for :math:`|\varphi| \le \pi/2`, continued by :math:`F(\pi - \varphi) = 2K -
    F(\varphi)` for the other half-turn, so that ``jacobi(incomplete_f(sn, cn, dn2, mc), m, mc)`` gives back
    ``(sn, cn, √dn2)``.
    """
    sn, cn, dn2 = (np.asarray(a, dtype=np.float64) for a in (sn, cn, dn2))
    near = sn * elliprf(cn * cn, dn2, 1.0)
    with np.errstate(invalid="ignore"):
        far = np.copysign(2 * complete_k(mc), sn) - near
    return np.where(cn >= 0, near, far)


def jacobi(u, m, mc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sn, cn, dn of ``u`` for parameter ``m = k²`` with ``mc = 1 − m`` given separately (both in [0, 1]).

    Arrays broadcast against each other. ``mc = 0`` is the separatrix: tanh, sech, sech.
    """
    u, m, mc = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (u, m, mc)))
    K = complete_k(mc)
    periodic = np.isfinite(K)
    # Into [-2K, 2K] by the period 4K, then [0, K] by sn(2K - u) = sn u, cn(2K - u) = -cn u and oddness of sn.
    with np.errstate(invalid="ignore"):
        r = np.where(periodic, u - 4 * K * np.round(u / np.where(periodic, 4 * K, 1.0)), u)
    sign_sn = np.where(r < 0, -1.0, 1.0)
    r = np.abs(r)
    beyond = periodic & (r > K)
    r = np.where(beyond, 2 * K - r, r)
    sign_cn = np.where(beyond, -1.0, 1.0)
    # Into [0, K/2] by the quarter-period shift.
    far = periodic & (r > K / 2)
    w = np.where(far, K - r, r)
    sn, cn, dn = _reduced(w, m, mc)
    kc = np.sqrt(mc)
    sn, cn, dn = (np.where(far, cn / dn, sn), np.where(far, kc * sn / dn, cn), np.where(far, kc / dn, dn))
    return sign_sn * sn, sign_cn * cn, dn


def _reduced(w: np.ndarray, m: np.ndarray, mc: np.ndarray):
    """sn, cn, dn for 0 ≤ w ≤ K/2 (or any w ≥ 0 at mc = 0)."""
    near_one = (mc == 0) | (mc * np.exp(2 * np.minimum(w, 300.0)) < _NEAR_ONE)
    sn, cn, dn = _agm(np.where(near_one, 0.0, w), m, mc)
    # A&S 16.15: the expansion about m = 1 (exact at mc = 0).
    t = np.tanh(w)
    wc = np.minimum(w, 700.0)  # beyond, only mc = 0 is near one, where the corrections vanish
    with np.errstate(over="ignore"):
        sech = 1 / np.cosh(w)
    sinh = np.sinh(wc)
    q = 0.25 * mc * (t - w * sech**2)  # ¼ m_c (sinh w cosh w − w) sech² w, without overflow
    return (np.where(near_one, t + q, sn), np.where(near_one, sech - q * sinh, cn),
            np.where(near_one, sech + 0.25 * mc * (t + w * sech**2) * sinh, dn))


def _agm(w: np.ndarray, m: np.ndarray, mc: np.ndarray):
    """The descending Landen transformation (A&S 16.4), started at b0 = k' rather than √(1 − m)."""
    a, b, c = np.ones_like(w), np.sqrt(mc), np.sqrt(m)
    aa, cc = [a], [c]
    for i in range(60):
        if i and np.all(np.abs(c) <= _EPS * a):  # at least one step: dn needs φ1
            break
        a, b, c = 0.5 * (a + b), np.sqrt(a * b), 0.5 * (a - b)
        aa.append(a)
        cc.append(c)
    n = len(aa) - 1
    phi = 2.0**n * aa[n] * w
    prev = phi
    for i in range(n, 0, -1):
        prev = phi
        phi = 0.5 * (phi + np.arcsin(np.clip(cc[i] / aa[i] * np.sin(phi), -1.0, 1.0)))
    cn = np.cos(phi)
    return np.sin(phi), cn, cn / np.cos(prev - phi)
