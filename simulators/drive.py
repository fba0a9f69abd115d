r"""The known periodic drive shared by the forced systems (oscillator, pendulum, Duffing, Van der Pol).

.. math::

    F(t) = \sum_k F_k \cos(\Omega_k t + \varphi_k)

A :class:`DrivenSystem` holds ``drive_amplitude``, ``drive_frequency`` and ``drive_phase``, each a scalar, one
value per trajectory, or ``(n_traj, n_terms)`` for a sum of terms (``(1, n_terms)``: terms shared by all
trajectories), and gives the rest of the project the force, the known-input channels and the features a model
may be given. Its ensemble specs are declared with :func:`drive_specs` and checked with
:func:`check_drive_specs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds, check_finite
from .params import EnsembleParams, ParamSpec, check_range, fixed
from .system import PhysicalSystem

__all__ = ["DRIVE_PARAMETERS", "DrivenSystem", "check_drive_specs", "drive_specs"]

DRIVE_PARAMETERS = ("drive_amplitude", "drive_frequency", "drive_phase")


def drive_specs() -> tuple[ParamSpec, ...]:
    """The default spec of a drive term field (no drive), for an ensemble's dataclass field."""
    return (fixed(0.0),)


def check_drive_specs(params: EnsembleParams) -> None:
    """Drive frequencies ≥ 0, and the three term fields giving one spec or the same number of terms."""
    for spec in params.drive_frequency:
        check_range("drive_frequency", spec, low=0.0)
    lengths = [len(getattr(params, n)) for n in DRIVE_PARAMETERS]
    if len(set(lengths) - {1}) > 1 or 0 in lengths:
        raise ValueError("drive_amplitude, drive_frequency and drive_phase must each give one spec or the "
                         f"same number of drive terms, got {lengths}")


@dataclass(frozen=True, kw_only=True, eq=False)
class DrivenSystem(PhysicalSystem):
    """A system with the known force F(t) on its last state component (see the module docstring)."""

    drive_amplitude: ArrayLike = 0.0
    drive_frequency: ArrayLike = 0.0
    drive_phase: ArrayLike = 0.0

    #: "phase": (cos, sin) of each term's phase Ω_k t + φ_k; "force": F(t) alone; "none".
    DRIVE_FEATURES: ClassVar[tuple[str, ...]] = ("phase", "force", "none")

    def set_parameters(self, **values: ArrayLike) -> None:
        """As :meth:`PhysicalSystem.set_parameters`, with the drive fields read from ``self`` as
        ``(n_traj, n_terms)`` arrays (frequencies ≥ 0)."""
        drive = {}
        for name in DRIVE_PARAMETERS:
            a = as_real_array(name, getattr(self, name), max_ndim=2)
            check_bounds(name, a, low=0.0) if name == "drive_frequency" else check_finite(name, a)
            a = np.atleast_1d(a)
            drive[name] = a.reshape(a.shape[0], -1)
        terms = {a.shape[1] for a in drive.values()} - {1}
        if len(terms) > 1:
            raise ValueError(
                "drive_amplitude, drive_frequency and drive_phase disagree on the number of drive terms "
                f"({', '.join(str(a.shape[1]) for a in drive.values())}); give each one or n_terms columns")
        n_terms = terms.pop() if terms else 1
        drive = {name: np.broadcast_to(a, (a.shape[0], n_terms)) for name, a in drive.items()}
        super().set_parameters(**values, **drive)

    def hamiltonian_trajectories(self) -> np.ndarray:
        """The undamped trajectories, where the system declares positions and momenta: a known drive keeps the
        motion Hamiltonian (H gains −q F(t)); friction (a ``damping`` > 0) does not."""
        damping = getattr(self, "damping", None)
        declared = super().hamiltonian_trajectories()
        return declared if damping is None else declared & (damping == 0)

    # ------------------------------------------------------------------ description
    @property
    def n_terms(self) -> int:
        return self.drive_amplitude.shape[1]

    @property
    def is_driven(self) -> bool:
        return bool(np.any(self.drive_amplitude != 0))

    @property
    def driven_trajectories(self) -> np.ndarray:
        """Which trajectories have a non-zero drive, bool ndarray of shape (n_traj,)."""
        return (self.drive_amplitude != 0).any(axis=1)

    def may_be_chaotic(self) -> bool:
        """A driven nonlinear system may be chaotic (a linear one, such as the oscillator, says False)."""
        return self.is_driven

    # ------------------------------------------------------------------ the force
    def force(self, time: ArrayLike) -> np.ndarray:
        """F(t) per trajectory: ndarray of shape (n_traj, n_times) for ``time`` of shape (n_times,)."""
        t = np.atleast_1d(np.asarray(time, dtype=np.float64))
        arg = self.drive_frequency[:, None, :] * t[None, :, None] + self.drive_phase[:, None, :]
        return np.einsum("nk,ntk->nt", self.drive_amplitude, np.cos(arg))

    def force_at(self, t: float, state: np.ndarray) -> np.ndarray:
        """F(t) at one time, for the rows of ``state``: shape (n_traj,), or a scalar for a single state (n_state,)."""
        force = np.sum(self.drive_amplitude * np.cos(self.drive_frequency * t + self.drive_phase), axis=-1)
        return force[0] if state.ndim == 1 else force

    def drive_names(self) -> tuple[str, ...]:
        return ("force",)

    def drive(self, time: ArrayLike) -> np.ndarray:
        """The known input F(t), ndarray of shape (n_traj, n_times, 1).

        Learning code that wants the drive's phase (cos, sin of Ω_k t + φ_k) asks :meth:`drive_features`.
        """
        return self.force(time)[..., None]

    def drive_features(self, time: np.ndarray, mode: str) -> np.ndarray:
        """``"phase"``: cos and sin of Ω_k t + φ_k per term, shape (n_traj, n_times, 2 n_terms); ``"force"``:
        F(t), shape (n_traj, n_times, 1); ``"none"``: no columns."""
        t = np.asarray(time, dtype=np.float64)
        if mode == "none":
            return np.zeros((self.n_traj, t.size, 0))
        if mode == "force":
            return self.drive(t)
        arg = self.drive_frequency[:, None, :] * t[None, :, None] + self.drive_phase[:, None, :]  # (n, m, K)
        return np.stack([np.cos(arg), np.sin(arg)], axis=-1).reshape(self.n_traj, t.size, -1)

    def check_free(self, what: str, **zero: np.ndarray) -> None:
        """Refuse a closed form unless the drive and the named parameters vanish on every trajectory."""
        zero = {"drive_amplitude": self.drive_amplitude, **zero}
        for name, value in zero.items():
            bad = np.flatnonzero(np.any(np.reshape(value, (self.n_traj, -1)) != 0, axis=1))
            if bad.size:
                raise ValueError(f"the {self.system} system's closed form is for {what}; trajectory {bad[0]} has "
                                 f"{name} = {float(np.ravel(np.reshape(value, (self.n_traj, -1))[bad[0]])[0])!r}: "
                                 'use method = "reference"')
