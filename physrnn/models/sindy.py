"""Sparse identification of the vector field (SINDy: Brunton, Proctor & Kutz, *PNAS* 113:3932, 2016), on PySINDy.

From the observed states alone: the time derivative by PySINDy's finite differences (order 4 by default: its
default order 2 loses 10–100× at the studies' Δt), a library of candidate terms, and PySINDy's sequential
thresholded least squares (STLSQ) for a sparse ṡ ≈ Θ(s, u) Ξ. The model never sees the simulator's right-hand
side, which the networks do not get either.

The library is built here, not with PySINDy's library classes: monomials up to a degree in the state, the known
inputs (drive features and parameters, SINDy's control) and, with ``library = "declared"``, the terms the system
declares (:meth:`simulators.PhysicalSystem.library`: the pendulum's sin θ, Kepler's x/r³), which are functions of
the whole state that PySINDy's custom libraries would pair with every input column.

The rollout integrates the identified field by classical RK4 at the data's Δt (``substeps`` steps per Δt), the
known inputs between samples from a cubic spline through them (parameters are constant; a drive's features are
smooth). Unless given, the threshold is chosen on the closed-loop error of the validation trajectories, every
candidate rolled out in one batch, in NumPy. A rollout of :data:`COMPILED_STEPS` steps or more (the diagnostics'
long runs) runs as one compiled XLA loop, the same field written once for either array namespace; a declared term
that does not take ``xp`` keeps it in NumPy.
"""

from __future__ import annotations

import inspect
import warnings
from itertools import combinations_with_replacement

import numpy as np

from simulators import get_system, system_names
from simulators._validation import check_memory

from .base import StepModel, diverging
from .configs import SINDyConfig
from .nvar import monomial_indices
from .selection import choose_on_closed_loops, validation_needed

__all__ = ["COMPILED_STEPS", "SINDy"]

#: Rollouts of at least this many steps run compiled (XLA), shorter ones in NumPy.
COMPILED_STEPS = 2000


class SINDy(StepModel):
    """A sparse vector field identified from the states, rolled out by RK4 (see the module)."""

    kind = "sindy"
    config_class = SINDyConfig

    coefficients_: np.ndarray  # (n_features, n_state): ṡ = features(s, u) · coefficients_
    feature_names_: tuple[str, ...]

    # -- the library
    def _library(self, spec):
        """(degree, declared terms) for data of ``spec``."""
        cfg = self.config
        system = get_system(spec.system) if spec.system in system_names() else None
        declared = system.library(tuple(spec.parameters)) if system is not None else None
        if cfg.library == "declared" and declared is None:
            raise ValueError(f"the {spec.system or 'given'} data's system declares no library; set library = "
                             "\"polynomial\" with a degree")
        degree = cfg.degree or (declared.degree if declared is not None else 0)
        if degree == 0:
            raise ValueError("these data's system declares no polynomial degree; set degree (for example 3)")
        terms = dict(declared.terms) if cfg.library == "declared" else {}
        return degree, terms

    def _variables(self, state, known, xp=np):
        """z = (state, parameters, declared terms of the state, drive features), (..., n_z): the known inputs
        kept (:meth:`_setup`), parameters before the drive's features. ``xp``: the array namespace (NumPy, or
        TensorFlow's inside the compiled loop)."""
        known = xp.take(known, self.known_columns_, axis=-1)
        known = xp.broadcast_to(known, tuple(state.shape[:-1]) + tuple(known.shape[-1:]))
        terms = [(f(state, xp=xp) if xp is not np else f(state))[..., None] for f in self._terms.values()]
        return xp.concatenate([state, known[..., self._n_drive:], *terms, known[..., :self._n_drive]], axis=-1)

    def _features(self, z, xp=np):
        """The constant, then every product of :meth:`_setup`'s list, (..., n_features)."""
        products = [xp.prod(xp.take(z, index, axis=-1), axis=-1) for _, index in self._groups]
        grouped = xp.concatenate([xp.ones_like(z[..., :1]), *products], axis=-1)  # the constant, then by group
        return xp.take(grouped, self._order, axis=-1)

    def _field(self, state, known, coefficients, xp=np):
        """The identified ṡ for states (C, n, n_state) under coefficients (C, n_features, n_state)."""
        return xp.einsum("cnf,cfo->cno", self._features(self._variables(state, known, xp), xp), coefficients)

    def _setup(self, spec, state_names: tuple[str, ...], known_columns: np.ndarray, n_known: int) -> None:
        """The library for data of ``spec``: the monomials up to the degree of the state, the parameters given and
        the declared terms; and each drive feature alone, or times a monomial of the parameters (the drive enters
        the field additively, as a force: its features' own products are not candidates, and cos² + sin² = 1
        would make them the constant again). Only the known inputs ``known_columns`` of the ``n_known`` enter:
        those that vary in the training data (a constant one is the constant term again)."""
        self.state_names_, self.n_known_ = tuple(state_names), int(n_known)
        self.known_columns_ = np.asarray(known_columns, dtype=np.int64)
        self._degree, self._terms = self._library(spec)
        names = _known_names(spec, n_known)
        n_drive_all = n_known - len(spec.parameters)
        drive = [names[k] for k in self.known_columns_ if k < n_drive_all]
        parameters = [names[k] for k in self.known_columns_ if k >= n_drive_all]
        self._n_drive = len(drive)
        main = [*state_names, *parameters, *self._terms]
        n_state, n_main = len(state_names), len(state_names) + len(parameters) + len(self._terms)
        products = [tuple(c) for d in range(1, self._degree + 1) for c in monomial_indices(n_main, d)]
        parameter_index = range(n_state, n_state + len(parameters))
        for k in range(len(drive)):
            for d in range(self._degree):
                products += [(*(parameter_index[i] for i in c), n_main + k)
                             for c in combinations_with_replacement(range(len(parameters)), d)]
        # grouped by length, so that each group's products are one vectorised call
        self._groups = [(np.array([i for i, p in enumerate(products) if len(p) == n]) + 1,
                         np.array([p for p in products if len(p) == n], dtype=np.int64))
                        for n in sorted({len(p) for p in products})]
        # where each feature lies in the constant-then-groups order _features builds
        self._order = np.argsort(np.concatenate([[0], *(positions for positions, _ in self._groups)]))
        self._n_features = 1 + len(products)
        variables = [*main, *drive]
        self.feature_names_ = ("1", *(_monomial_name(variables, np.array(p)) for p in products))

    # -- fitting
    def uses_validation(self) -> bool:
        return self.config.threshold < 0  # the threshold chosen on the validation closed loops

    def _fit(self, train, validation, **options):
        import pysindy as ps

        cfg = self.config
        if train.system is not None and train.n_obs != train.system.n_state:
            raise ValueError(f"sindy identifies the vector field of the whole state; these data observe "
                             f"{', '.join(train.state_names)} of {', '.join(train.system.state_names)} (use "
                             "observation = \"full\")")
        flat = train.known.reshape(train.n_traj * train.time.size, train.n_known)
        varies = np.ptp(flat, axis=0) > 1e-12 * np.maximum(1.0, np.abs(flat).max(axis=0)) if flat.size else []
        self._setup(train.spec, train.state_names, np.flatnonzero(varies), train.n_known)
        difference = ps.FiniteDifference(order=cfg.difference_order, drop_endpoints=True)
        derivative = np.stack([difference(x, train.time) for x in train.observed])  # NaN at the dropped ends
        rows = np.isfinite(derivative).all(axis=-1)
        check_memory(3 * 8.0 * rows.sum() * self._n_features, f"degree = {self._degree} ({self._n_features} library "
                     f"terms of {rows.sum()} training rows)", "choose a lower degree or fewer trajectories")
        theta = self._features(self._variables(train.observed, train.known))[rows]
        target = derivative[rows]

        def identify(threshold: float) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # STLSQ warns when a threshold removes every term
                fitted = ps.STLSQ(threshold=threshold, alpha=cfg.alpha, unbias=True).fit(theta, target)
            return np.asarray(fitted.coef_, dtype=np.float64).T

        if cfg.threshold >= 0:
            threshold, history = cfg.threshold, {}
        else:
            if validation is None:
                raise validation_needed(self.kind, "threshold", 1e-3)
            candidates = np.stack([identify(t) for t in cfg.thresholds])
            total = validation.observed.shape[1]
            n_steps = total if not cfg.select_steps else min(total, 1 + cfg.select_steps)
            observed, _ = self._closed_loop(candidates, validation, 1, n_steps, self.bound_)
            threshold, history = choose_on_closed_loops(observed, validation.observed, 1,
                                                        np.std(train.observed.reshape(-1, train.n_obs), axis=0),
                                                        cfg.thresholds, "threshold")
        self.coefficients_ = identify(threshold)
        residual = theta @ self.coefficients_ - target
        self.history_ = {**history, "threshold": [float(threshold)], "terms": [float(np.count_nonzero(
            self.coefficients_))], "derivative_mse": [float(np.mean(residual**2))]}

    # -- the closed loop
    def _closed_loop(self, coefficients: np.ndarray, data, context: int, n_steps: int,
                     bound: float) -> tuple[np.ndarray, np.ndarray]:
        """RK4 on the field of each coefficient set of a batch (C, n_features, n_state): observed
        (C, n_traj, n_steps, n_state), NaN after a divergence, and diverged_at (C, n_traj)."""
        batch, n = coefficients.shape[0], data.n_traj
        m = self.config.substeps
        h = data.dt / m
        known = _KnownInputs(data.time, data.known)
        observed = np.full((batch, n, n_steps, data.n_obs), np.nan)
        observed[:, :, :context] = data.observed[None, :, :context]
        state = observed[:, :, context - 1].copy()
        alive = np.ones((batch, n), dtype=bool)
        diverged_at = np.full((batch, n), -1)
        with np.errstate(all="ignore"):
            for i in range(context, n_steps):
                for j in range(m):
                    t = data.time[i - 1] + j * h
                    u0, u1, u2 = known(t), known(t + h / 2), known(t + h)
                    k1 = self._field(state, u0, coefficients)
                    k2 = self._field(state + h / 2 * k1, u1, coefficients)
                    k3 = self._field(state + h / 2 * k2, u1, coefficients)
                    k4 = self._field(state + h * k3, u2, coefficients)
                    state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
                bad = alive & diverging(np, state, bound)
                diverged_at[bad] = i
                alive &= ~bad
                state[~alive] = np.nan
                observed[:, :, i] = state
        return observed, diverged_at

    def _rollout(self, data, context, n_steps, bound):
        if n_steps - context >= COMPILED_STEPS and self._compilable():
            return self._compiled_loop(data, context, n_steps, bound)
        observed, diverged_at = self._closed_loop(self.coefficients_[None], data, context, n_steps, bound)
        return observed[0], diverged_at[0]

    def _compilable(self) -> bool:
        """Whether every declared term takes ``xp`` (the array namespace), so that the field compiles."""
        return all("xp" in inspect.signature(f).parameters for f in self._terms.values())

    def _compiled_loop(self, data, context, n_steps, bound):
        """The NumPy loop's RK4 as one XLA-compiled loop: the known inputs at every stage of every step are read
        from their spline beforehand."""
        import tensorflow as tf
        import tensorflow.experimental.numpy as tnp

        from .rollout import absolute_step

        m, n_new = self.config.substeps, n_steps - context
        h = data.dt / m
        known = _KnownInputs(data.time, data.known)
        if known.empty:  # constant: one value a trajectory, read at every step
            stages = np.broadcast_to(known.value[:, None, None, None], (data.n_traj, 1, m, 3, data.n_known))
        else:  # (n, n_new, m, 3, n_known) at t, t + h/2, t + h of every substep
            t = data.time[context - 1:n_steps - 1, None, None] + h * np.arange(m)[:, None] + [0.0, h / 2, h]
            stages = known(t.ravel()).reshape((data.n_traj,) + t.shape + (data.n_known,))
        coefficients = tf.constant(self.coefficients_[None])

        def field(state, u):
            return self._field(state[None], u[None], coefficients, xp=tnp)[0]

        @tf.function(jit_compile=True)
        def loop(state, stages, h, bound):
            outputs = tf.TensorArray(state.dtype, size=n_new)
            diverged_at = tf.fill([tf.shape(state)[0]], tf.constant(-1, tf.int64))
            alive = tf.ones([tf.shape(state)[0]], tf.bool)
            for i in tf.range(n_new):
                at = stages[:, tf.minimum(i, tf.shape(stages)[1] - 1)]  # (n, m, 3, n_known); constant: one row
                for j in range(m):
                    k1 = field(state, at[:, j, 0])
                    k2 = field(state + h / 2 * k1, at[:, j, 1])
                    k3 = field(state + h / 2 * k2, at[:, j, 1])
                    k4 = field(state + h * k3, at[:, j, 2])
                    state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
                bad = alive & diverging(tnp, state, bound)
                diverged_at = tf.where(bad, tf.cast(i, tf.int64), diverged_at)
                alive = alive & ~bad
                state = tf.where(alive[:, None], state, tf.zeros_like(state))  # keep the loop finite for the others
                outputs = outputs.write(i, tf.where(alive[:, None], state, tf.constant(np.nan, state.dtype)))
            return tf.transpose(outputs.stack(), [1, 0, 2]), diverged_at

        predicted, diverged_at = loop(tf.constant(data.observed[:, context - 1], tf.float64),
                                      tf.constant(stages, tf.float64), tf.constant(h, tf.float64),
                                      tf.constant(bound, tf.float64))
        out = np.full((data.n_traj, n_steps, data.n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        out[:, context:] = predicted.numpy()
        return out, absolute_step(diverged_at.numpy(), context)

    def _step_jacobian(self, data, steps):
        """∂(one RK4 step)/∂s by central differences of the step itself (h = 1e-6 of each component's size):
        accurate to about 1e-9, which the diagnostics' figures do not resolve."""
        out = np.empty((data.n_traj, len(steps), 1, data.n_obs, data.n_obs))
        for i, n in enumerate(steps):
            base = data.observed[:, n]
            for c in range(data.n_obs):
                h = 1e-6 * np.maximum(1.0, np.abs(base[:, c]))
                ends = []
                for sign in (1.0, -1.0):
                    moved = data.observed.copy()
                    moved[:, n, c] += sign * h
                    ends.append(self._closed_loop(self.coefficients_[None], _replace_observed(data, moved), n + 1,
                                                  n + 2, np.inf)[0][0, :, n + 1])
                out[:, i, 0, :, c] = (ends[0] - ends[1]) / (2 * h[:, None])
        return out

    # -- reading it
    def equations(self, precision: int = 4) -> list[str]:
        """The identified field, one line per state component, e.g. ``"omega' = -0.9998 sin(theta) - 0.1 omega"``."""
        self._check_fitted()
        return self._render(self.coefficients_, precision)

    def _render(self, coefficients: np.ndarray, precision: int = 4) -> list[str]:
        lines = []
        for c, name in enumerate(self.state_names_):
            text = ""
            for w, f in zip(coefficients[:, c], self.feature_names_):
                if w == 0:
                    continue
                term = f"{abs(w):.{precision}g}" + ("" if f == "1" else f" {f}")
                text += ("-" if w < 0 else "") + term if not text else (" - " if w < 0 else " + ") + term
            lines.append(f"{name}' = {text or '0'}")
        return lines

    def against_truth(self, data, *, points: int = 200, tolerance: float = 1e-9) -> dict:
        """The identified coefficients against the true field's in the same library, from data that carry
        their system (the simulator's right-hand side, which fitting never saw).

        The true coefficients are the least-squares projection of the true field, at ``points`` times of each
        trajectory, onto the library: exact where the library holds the field (``holds``: the projection's
        relative residual below 1e-6). Returns ``error`` (‖Ξ − Ξ_true‖ / ‖Ξ_true‖), ``spurious`` (terms
        identified where the truth has none: below ``tolerance`` of its largest), ``missed`` (true terms set to
        zero), ``residual`` and the ``truth`` as equations.
        """
        self._check_fitted()
        if data.system is None:
            raise ValueError("the data carry no system, so no true field to compare with")
        steps = np.unique(np.linspace(0, data.time.size - 1, min(points, data.time.size)).astype(int))
        states, known = data.observed[:, steps], data.known[:, steps]
        theta = self._features(self._variables(states, known)).reshape(-1, self._n_features)
        field = np.stack([data.system.rhs(data.time[n], data.observed[:, n]) for n in steps], axis=1)
        field = field.reshape(-1, field.shape[-1])
        truth = np.linalg.lstsq(theta, field, rcond=None)[0]
        residual = float(np.linalg.norm(theta @ truth - field) / max(np.linalg.norm(field), 1e-300))
        truth = np.where(np.abs(truth) > tolerance * np.abs(truth).max(), truth, 0.0)
        present, found = truth != 0, self.coefficients_ != 0
        return {"error": float(np.linalg.norm(self.coefficients_ - truth) / np.linalg.norm(truth)),
                "spurious": int(np.count_nonzero(found & ~present)), "missed": int(np.count_nonzero(present & ~found)),
                "residual": residual, "holds": residual < 1e-6, "equations": self.equations(),
                "truth": self._render(truth)}

    # -- persistence
    def _arrays(self):
        return {"coefficients": self.coefficients_, "state_names": np.array(self.state_names_),
                "known_columns": self.known_columns_, "n_known": np.array(self.n_known_)}

    def _restore_arrays(self, arrays):
        self.coefficients_ = arrays["coefficients"]
        self._setup(self.spec_, tuple(str(n) for n in arrays["state_names"]), arrays["known_columns"],
                    int(arrays["n_known"]))


def _known_names(spec, n_known: int) -> list[str]:
    """Names of the known inputs: the drive's features (d0, d1, …), then the parameters by name."""
    n_drive = n_known - len(spec.parameters)
    return [f"d{i}" for i in range(n_drive)] + list(spec.parameters)


def _monomial_name(names: list[str], idx: np.ndarray) -> str:
    """"x^2 v" for the index tuple (0, 0, 1) of names (x, v)."""
    parts = []
    for k in sorted(set(idx.tolist()), key=idx.tolist().index):
        power = int(np.count_nonzero(idx == k))
        parts.append(names[k] + (f"^{power}" if power > 1 else ""))
    return " ".join(parts)


def _replace_observed(data, observed):
    from ..data import StepData

    return StepData(observed, data.known, data.time, data.dt, data.spec, data.trajectories, data.system, observed,
                    data.state_names)


class _KnownInputs:
    """The known inputs (n_traj, n_steps, n_known) at any time: a cubic spline through the samples (exact for
    the constant parameters, fourth order for a smooth drive), or nothing to interpolate."""

    def __init__(self, time: np.ndarray, known: np.ndarray) -> None:
        self.empty = known.shape[-1] == 0 or len(time) < 2
        self.value = known[:, 0]
        if not self.empty:
            from scipy.interpolate import CubicSpline

            self.spline = CubicSpline(time, known, axis=1)

    def __call__(self, t: float) -> np.ndarray:
        return self.value if self.empty else self.spline(t)
