r"""The eigenvalue-problem flow of Yi, Fu & Tang (2004) and its exact solution.

.. math::

    \frac{dx}{dt} = -x + \big[x^\top x\,A + (1 - x^\top A x)\,I\big]\,x, \qquad A = A^\top \in \mathbb{R}^{n\times n}.

Along the flow :math:`\tfrac{d}{dt}\|x\|^2 = 0`, so :math:`\|x(t)\| = \|x_0\|`, and the flow is solved exactly by

.. math::

    x(t) = \|x_0\|\,\frac{e^{\|x_0\|^2 A t} x_0}{\|e^{\|x_0\|^2 A t} x_0\|}.

For :math:`x_0` not orthogonal to the top eigenvector, :math:`x(t)/\|x_0\|` tends to it and the Rayleigh quotient
:math:`x^\top A x / x^\top x` tends to :math:`\lambda_{\max}` at the rate :math:`2(\lambda_1 - \lambda_2)\|x_0\|^2`;
the flow for :math:`-A` gives :math:`\lambda_{\min}`; a start orthogonal to eigenvectors already found stays
orthogonal to them (the complement is invariant) and reaches the largest remaining eigenvalue.

Reference: Z. Yi, Y. Fu, H. J. Tang, "Neural networks based approach for computing eigenvectors and
eigenvalues of symmetric matrix", Computers & Mathematics with Applications 47 (2004) 1155–1164.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds, check_finite, check_time_grid
from .params import EnsembleParams, ParamSpec, check_range, fixed, param_rng
from .system import PhysicalSystem, register_system

__all__ = [
    "EigenFlow",
    "EigenParams",
    "FlowEigenpairs",
    "convergence_time",
    "flow_eigenpairs",
    "random_symmetric",
    "rayleigh_quotient",
]

#: Relative asymmetry ``max|A − Aᵀ| / max|A|`` accepted (and removed by symmetrising) in a matrix.
SYMMETRY_RTOL = 1e-12


def check_symmetric(matrix: ArrayLike, name: str = "matrix") -> np.ndarray:
    """A finite, square, symmetric matrix or stack of them, returned as ``(n_matrices, n, n)`` float64."""
    a = check_finite(name, as_real_array(name, matrix, max_ndim=3))
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must be square, of shape (n, n) or (n_traj, n, n), got shape {a.shape}")
    if a.shape[-1] < 1:
        raise ValueError(f"{name} must be at least 1 x 1, got shape {a.shape}")
    a = a.reshape((-1,) + a.shape[-2:])
    asym = np.abs(a - np.swapaxes(a, -1, -2)).max(axis=(-1, -2))
    scale = np.abs(a).max(axis=(-1, -2))
    bad = asym > SYMMETRY_RTOL * scale
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name} is not symmetric: max |A - A^T| = {asym[i]:.3g} (matrix {i}) exceeds "
            f"{SYMMETRY_RTOL:g} x max |A| = {SYMMETRY_RTOL * scale[i]:.3g}; the flow needs a symmetric A"
        )
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def rayleigh_quotient(matrix: ArrayLike, x: ArrayLike) -> np.ndarray:
    """``xᵀAx / xᵀx`` over the last axis of ``x``; ``matrix`` is (n, n) or (n_traj, n, n) for x (n_traj, ..., n)."""
    a = np.asarray(matrix, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        ax = x @ a  # A symmetric: (A x)ᵀ = xᵀ A
    else:
        ax = np.einsum("bij,b...j->b...i", a, x)
    return np.sum(x * ax, axis=-1) / np.sum(x * x, axis=-1)


def random_symmetric(size: int, *, seed: int | np.random.Generator, n_matrices: int | None = None) -> np.ndarray:
    """Random symmetric matrices from the Gaussian orthogonal ensemble, ``(G + Gᵀ) / √(2n)``.

    The normalisation keeps the spectrum in about [−2, 2] for every ``size``.
    Returns ndarray of shape (size, size), or (n_matrices, size, size) if ``n_matrices`` is given.
    """
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    rng = np.random.default_rng(seed)
    shape = (size, size) if n_matrices is None else (int(n_matrices), size, size)
    g = rng.standard_normal(shape)
    return (g + np.swapaxes(g, -1, -2)) / np.sqrt(2 * size)


def convergence_time(matrix: ArrayLike, *, initial_norm: ArrayLike = 1.0, tol: float = 1e-10) -> np.ndarray:
    """Flow time after which the Rayleigh quotient is within about ``tol`` of λmax (relative to the spread).

    The error decays as ``exp(−2 (λ1 − λ2) ‖x0‖² t)`` from an O(1) overlap with the top eigenvector, so
    ``t = ln(1/tol) / (2 (λ1 − λ2) ‖x0‖²)``; infinite for a degenerate top eigenvalue. Uses ``eigh``: it is
    for choosing the horizon of generated data, where the matrix is known.
    """
    a = check_symmetric(matrix)
    check_bounds("tol", np.asarray(tol, dtype=float), low=0.0, strict=True, high=1.0)
    w = np.linalg.eigh(a)[0]
    gap = w[:, -1] - w[:, -2] if w.shape[1] > 1 else np.full(len(w), np.inf)
    r2 = np.asarray(initial_norm, dtype=np.float64) ** 2
    with np.errstate(divide="ignore"):
        t = np.log(1 / tol) / (2 * gap * r2)
    return t if np.ndim(matrix) == 3 else t[0]


@dataclass(frozen=True, kw_only=True)
class EigenParams(EnsembleParams):
    """Specs of an eigen-flow ensemble.

    ``matrix`` is ``"random"`` (Gaussian orthogonal ensemble, see :func:`~simulators.random_symmetric`) or an
    explicit symmetric ``size`` × ``size`` list of lists; ``shared_matrix`` gives every trajectory the same
    matrix (many starts of one problem) instead of one matrix each. ``matrix_seed`` draws the random matrix
    from its own seed rather than the ensemble's, so two ensembles (say, training and test starts) can share
    one problem. ``negate`` flows with −A instead, whose limit is the eigenvector of λmin(A); the files then
    hold −A as the matrix. Starts point in uniformly random directions with norm ``initial_norm``.
    """

    size: int = 6
    matrix: str | tuple[tuple[float, ...], ...] = "random"
    shared_matrix: bool = True
    matrix_seed: int | None = None
    negate: bool = False
    initial_norm: ParamSpec = fixed(1.0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], system: str = "eigen") -> EigenParams:
        d = dict(d)
        if isinstance(d.get("matrix"), list):
            d["matrix"] = tuple(tuple(row) if isinstance(row, list) else row for row in d["matrix"])
            d.setdefault("size", len(d["matrix"]))
        return super().from_dict(d, system)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive integer, got {self.size!r}")
        for name in ("shared_matrix", "negate"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.matrix_seed is not None:
            if isinstance(self.matrix_seed, bool) or not isinstance(self.matrix_seed, int) or self.matrix_seed < 0:
                raise ValueError(f"matrix_seed must be an integer >= 0, got {self.matrix_seed!r}")
            if not isinstance(self.matrix, str):
                raise ValueError("matrix_seed is for a random matrix; drop it or set matrix = \"random\"")
        if isinstance(self.matrix, str):
            if self.matrix != "random":
                raise ValueError(f"matrix must be \"random\" or a list of rows, got {self.matrix!r}")
        else:
            a = check_symmetric(self.matrix)
            if a.shape[-1] != self.size:
                raise ValueError(f"matrix is {a.shape[-1]} x {a.shape[-1]} but size = {self.size}")
        check_range("initial_norm", self.initial_norm, low=0.0, strict=True)

    def to_config(self) -> dict[str, Any]:
        matrix = self.matrix if isinstance(self.matrix, str) else [list(r) for r in self.matrix]
        out = {"size": self.size, "matrix": matrix, "shared_matrix": self.shared_matrix,
               "initial_norm": self.initial_norm.to_config()}
        if self.matrix_seed is not None:
            out["matrix_seed"] = self.matrix_seed
        if self.negate:
            out["negate"] = True
        return out  # the defaults left out, so configs written before these options keep their cache keys

    def sample(self, n_traj: int, seed: int) -> tuple[EigenFlow, np.ndarray]:
        if isinstance(self.matrix, str):
            n_mat = None if self.shared_matrix else n_traj
            matrix_seed = seed if self.matrix_seed is None else self.matrix_seed
            a = random_symmetric(self.size, seed=param_rng(matrix_seed, "matrix"), n_matrices=n_mat)
        else:
            a = np.array(self.matrix, dtype=float)
        if self.negate:
            a = -a
        direction = param_rng(seed, "x0").standard_normal((n_traj, self.size))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        x0 = direction * self.initial_norm.sample(n_traj, seed, "initial_norm")[:, None]
        return EigenFlow(matrix=a), x0


    def initial_params(self, x0: np.ndarray, system=None) -> dict[str, np.ndarray]:
        return {"x0": x0.copy(), "initial_norm": np.linalg.norm(x0, axis=1)}


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class EigenFlow(PhysicalSystem):
    """An ensemble of eigen flows ``dx/dt = −x + [xᵀx A + (1 − xᵀAx) I] x``.

    Parameters
    ----------
    matrix : ndarray of shape (n, n) or (n_traj, n, n)
        Symmetric A (one shared, or one per trajectory).
    """

    matrix: ArrayLike
    n_traj: int = field(init=False)
    system = "eigen"
    PARAMETERS = ("matrix",)
    # ṡ = A s − (sᵀ A s) s: cubic in s for a matrix shared by the ensemble.
    LIBRARY_DEGREE = 3
    Params = EigenParams
    AUTO_T_END = True

    def __post_init__(self) -> None:
        a = check_symmetric(self.matrix)
        a.setflags(write=False)
        object.__setattr__(self, "matrix", a)
        object.__setattr__(self, "n_traj", a.shape[0])

    @property
    def n_state(self) -> int:
        return self.matrix.shape[-1]

    def auto_t_end(self, initial_state: np.ndarray) -> float:
        """The latest time at which the slowest start's Rayleigh quotient is within 1e-10 of λmax
        (:func:`convergence_time`)."""
        norms = np.linalg.norm(initial_state, axis=1)
        horizon = float(np.max(convergence_time(self.matrix, initial_norm=norms)))
        if not math.isfinite(horizon):
            raise ValueError("t_end = \"auto\" needs a gap between the top two eigenvalues; a matrix has a "
                             "degenerate top eigenvalue, so give t_end or n_steps")
        return horizon

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        return "eigen"
    def equilibria(self) -> dict[str, np.ndarray]:
        """±v_max on the unit sphere (the unit eigenvector of λmax, sign as ``eigh`` gives it): where every start
        not orthogonal to it ends. The flow's linearisation there has rates ‖x‖²(λ_i − λmax): the eigenvalue gaps.
        (Every ±r v_i is an equilibrium of a sphere of radius r; these two are the stable ones of the unit sphere.)"""
        top = np.linalg.eigh(self.matrix)[1][..., -1]
        return {"+v_max": self._at(top), "-v_max": self._at(-top)}


    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """The norm ‖x‖, which the flow conserves (d‖x‖²/dt = 0)."""
        return {"norm": lambda states: np.linalg.norm(states, axis=-1)}

    def conserves_invariants(self) -> np.ndarray:
        return np.ones(self.n_traj, dtype=bool)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.n_state))

    @property
    def state_units(self) -> tuple[str, ...]:
        return ("1",) * self.n_state

    def params(self) -> dict[str, np.ndarray]:
        """The matrix and its reference spectrum from ``numpy.linalg.eigh`` (ascending), per trajectory."""
        w, v = np.linalg.eigh(self.matrix)
        return {"matrix": self.matrix, "eigenvalues": w, "eigenvectors": v}

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        """dx/dt for ``state`` of shape (n_traj, n) (or (n,) for one trajectory)."""
        a = self.matrix if state.ndim > 1 else self.matrix[0]
        ax = np.einsum("...ij,...j->...i", a, state)
        xx = np.sum(state * state, axis=-1, keepdims=True)
        xax = np.sum(state * ax, axis=-1, keepdims=True)
        return -state + xx * ax + (1 - xax) * state

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """∂f/∂x = xᵀx A + 2 A x xᵀ − 2 x (A x)ᵀ − (xᵀAx) I, shape (n_traj, n, n).

        (The −x and the (1)·x of the flow cancel in the Jacobian as they do in f.)
        """
        x = np.atleast_2d(state)
        a = np.broadcast_to(self.matrix, (x.shape[0],) + self.matrix.shape[-2:])
        ax = np.einsum("bij,bj->bi", a, x)
        xx = np.sum(x * x, axis=-1)[:, None, None]
        xax = np.sum(x * ax, axis=-1)[:, None, None]
        eye = np.eye(x.shape[1])
        return xx * a + 2 * ax[:, :, None] * x[:, None, :] - 2 * x[:, :, None] * ax[:, None, :] - xax * eye

    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """The closed form ``‖x0‖ e^{‖x0‖² A t} x0 / ‖e^{‖x0‖² A t} x0‖``, evaluated in the eigenbasis of A.

        Each component is carried as a log-magnitude shifted by its running maximum, so large ``t``
        neither overflows nor loses a start orthogonal to the top eigenvector.

        Parameters
        ----------
        initial_state : ndarray of shape (n_traj, n)
        time : ndarray of shape (n_steps,)

        Returns
        -------
        ndarray of shape (n_traj, n_steps, n)
        """
        t = check_time_grid(time)
        x0 = np.asarray(initial_state, dtype=np.float64)
        if x0.ndim != 2 or x0.shape[1] != self.n_state or self.n_traj not in (1, x0.shape[0]):
            raise ValueError(f"initial_state must have shape ({self.n_traj}, {self.n_state}), got {x0.shape}")
        if x0.shape[0] != self.n_traj:
            return self.broadcast(x0.shape[0]).exact(x0, t)
        w, v = np.linalg.eigh(self.matrix)
        coef = np.einsum("bji,bj->bi", v, x0)  # x0 in the eigenbasis
        r2 = np.sum(x0 * x0, axis=-1)
        tau = t - t[0]
        with np.errstate(divide="ignore"):
            log_mag = np.log(np.abs(coef))[:, None, :] + (r2[:, None, None] * w[:, None, :]) * tau[None, :, None]
        shift = log_mag.max(axis=-1, keepdims=True)
        shift[~np.isfinite(shift)] = 0.0  # x0 = 0: an equilibrium
        y = np.sign(coef)[:, None, :] * np.exp(log_mag - shift)
        y = np.einsum("bij,btj->bti", v, y)
        norm = np.linalg.norm(y, axis=-1, keepdims=True)
        r = np.sqrt(r2)[:, None, None]
        with np.errstate(invalid="ignore"):
            out = np.where(norm > 0, r * y / np.where(norm > 0, norm, 1.0), 0.0)
        return out


@dataclass(frozen=True)
class FlowEigenpairs:
    """Eigenpairs found by integrating the flow.

    Attributes
    ----------
    eigenvalues : ndarray of shape (k,)
        Rayleigh quotients at the end of each flow, in the order found (descending for ``largest``).
    eigenvectors : ndarray of shape (n, k)
        Unit vectors, column j for eigenvalue j.
    residuals : ndarray of shape (k,)
        ``‖A v − λ v‖`` for each pair.
    flow_time : ndarray of shape (k,)
        Flow time integrated for each pair.
    converged : ndarray of shape (k,), bool
        Whether each residual met the tolerance before ``max_steps``.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    flow_time: np.ndarray
    converged: np.ndarray


def flow_eigenpairs(
    matrix: ArrayLike,
    n_pairs: int | None = None,
    *,
    which: str = "largest",
    tol: float = 1e-9,
    initial_norm: float = 1.0,
    seed: int | np.random.Generator = 0,
    max_steps: int = 200_000,
) -> FlowEigenpairs:
    """Eigenpairs of a symmetric matrix by integrating the flow (RK4) from random orthogonal starts.

    Pair ``j`` starts from a random vector orthogonal to the ``j`` vectors already found, and the state is
    projected back onto their orthogonal complement after every step, so round-off cannot regrow a found
    direction. Each flow stops when ``‖A x − ρ x‖ / ‖x‖ ≤ tol · ‖A‖_F``.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
    n_pairs : int, optional
        How many pairs (default: all ``n``).
    which : {"largest", "smallest"}
        Find eigenvalues from the top down, or from the bottom up (through the flow of ``−A``).
    tol : float
        Relative residual at which a flow stops.
    initial_norm : float
        ``‖x0‖``; the convergence rate scales with its square.
    seed : int or numpy.random.Generator
    max_steps : int
        RK4 steps allowed per pair.
    """
    a = check_symmetric(matrix)
    if a.shape[0] != 1:
        raise ValueError(f"flow_eigenpairs takes one matrix of shape (n, n), got shape {np.shape(matrix)}")
    a = a[0]
    n = a.shape[0]
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    n_pairs = n if n_pairs is None else n_pairs
    if int(n_pairs) != n_pairs or not 1 <= n_pairs <= n:
        raise ValueError(f"n_pairs must be an integer from 1 to {n}, got {n_pairs!r}")
    check_bounds("tol", np.asarray(tol, dtype=float), low=0.0, strict=True)
    check_bounds("initial_norm", np.asarray(initial_norm, dtype=float), low=0.0, strict=True)
    sign = 1.0 if which == "largest" else -1.0
    flow = EigenFlow(matrix=sign * a)
    rng = np.random.default_rng(seed)
    scale = max(float(np.linalg.norm(a)), np.finfo(float).tiny)
    # Linearised about a fixed point the flow has rates −‖x0‖²(λ1 − λi), at most 2‖A‖_F‖x0‖² in size;
    # h = 1/(‖A‖_F‖x0‖²) keeps every such h·rate within RK4's stability interval (|hμ| < 2.78).
    h = 1.0 / (scale * initial_norm**2)
    found = np.zeros((n, 0))
    values, residuals, times, converged = [], [], [], []

    def project(x: np.ndarray) -> np.ndarray:
        x = x - found @ (found.T @ x)
        return initial_norm * x / np.linalg.norm(x)

    for _ in range(int(n_pairs)):
        x = project(rng.standard_normal(n))
        steps, ok = 0, False
        while True:
            ax = flow.matrix[0] @ x
            rho = (x @ ax) / (x @ x)
            res = np.linalg.norm(ax - rho * x) / np.linalg.norm(x)
            if res <= tol * scale:
                ok = True
                break
            if steps >= max_steps:
                break
            k1 = flow.rhs(0.0, x)
            k2 = flow.rhs(0.0, x + 0.5 * h * k1)
            k3 = flow.rhs(0.0, x + 0.5 * h * k2)
            k4 = flow.rhs(0.0, x + h * k3)
            x = project(x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4))
            steps += 1
        v = x / np.linalg.norm(x)
        found = np.column_stack([found, v])
        values.append(sign * rho)
        residuals.append(res)
        times.append(steps * h)
        converged.append(ok)
    return FlowEigenpairs(
        eigenvalues=np.array(values),
        eigenvectors=found,
        residuals=np.array(residuals),
        flow_time=np.array(times),
        converged=np.array(converged),
    )
