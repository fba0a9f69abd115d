"""Every metric of the registry on a case whose answer tells its definition from the plausible wrong ones.

Each case is computed through the registry's own entry (the function a study, a target and a sweep use), and
each comment names the wrong definition it rules out and the value that one would give. A metric registered
without a case here fails ``test_every_registered_metric_has_a_known_answer``.
"""

import numpy as np
import pytest

from dataclasses import dataclass

from physrnn.metrics import LYAPUNOV_PERIODS, METRICS
from simulators import LinearOscillator, PhysicalSystem

T5 = np.arange(5.0)


def _series(*components):
    """One trajectory, the given components as columns: shape (1, n_steps, n_components)."""
    return np.stack([np.asarray(c, float) for c in components], axis=-1)[None]


def _case_rmse():
    # Errors (0, 0, 0, 2): RMSE = √(4/4) = 1, where the mean absolute error would be 0.5 and the mean error 0.5.
    true = _series([1, 2, 3, 4])
    pred = _series([1, 2, 3, 6])
    return dict(pred=pred, true=true, time=T5[:4], expected=[[1.0]])


def _case_nrmse():
    # Truth (2, 0, 2, 0): mean 1, standard deviation 1, RMS √2. A constant error 0.5: RMSE 0.5, so NRMSE = 0.5;
    # dividing by the RMS would give 0.354, by the range 0.25.
    true = _series([2, 0, 2, 0])
    return dict(pred=true + 0.5, true=true, time=T5[:4], expected=[[0.5]])


def _case_max_error():
    # Errors (0.1, −0.3, 0.2) in one component, (0, 0, 0) in the other: the largest *absolute* error is 0.3;
    # without the absolute value it would read 0.2.
    true = _series([0, 0, 0], [1, 1, 1])
    pred = _series([0.1, -0.3, 0.2], [1, 1, 1])
    return dict(pred=pred, true=true, time=T5[:3], expected=[[0.3, 0.0]])


def _case_valid_time():
    # Component 0 has range 2 and fraction 0.25, so the threshold is 0.5: its error reaches exactly 0.5 at t = 2
    # (not beyond: still valid) and 0.6 at t = 4. Component 1 (range 1, threshold 0.25) stays within it until
    # t = 3, where its error is 0.3. The valid time is the first step at which *any* component exceeds: t = 3.
    # Requiring all components would give the horizon (4); a threshold of a fraction of half the range would
    # end it at t = 2 (0.5 > 0.25); counting the exact threshold as exceeded would also give 2.
    true = _series([0, 1, 2, 1, 0], [0, 0.25, 0.5, 0.75, 1])
    pred = true + np.stack([[0, 0, 0.5, 0.1, 0.6], [0, 0.1, 0, 0.3, 0]], axis=-1)[None]
    return dict(pred=pred, true=true, time=T5, valid_fraction=0.25, expected=[3.0])


def _case_valid_periods():
    # Free undamped motion at ω0 = 2 has period π; a valid time of 3 (as above, on a time grid 0..4) is 3/π periods.
    case = _case_valid_time()
    return dict(case, system=LinearOscillator(natural_frequency=2.0), expected=[3.0 / np.pi])


def _case_energy_error():
    # E = v²/2 + ω0² x²/2 with ω0 = 2. States scaled by 1 + ε: the largest energy error is at the largest energy,
    # (2ε + ε²) max E, so the relative error is 2ε + ε² = 0.0201 for ε = 0.01 (ε alone if the metric compared
    # amplitudes, 4.02 if ω0 were taken as 1 with the wrong scale).
    osc = LinearOscillator(natural_frequency=2.0)
    true = _series([1, 0, -1, 0], [0, -2, 0, 2])
    return dict(pred=1.01 * true, true=true, time=T5[:4], system=osc, expected=[0.0201])


@dataclass(frozen=True, kw_only=True, eq=False)
class Saddle(PhysicalSystem):
    """ṡ = (a x, −y): the largest Lyapunov exponent is a, and Benettin's estimate has a closed form."""

    system = "saddle"
    state_names = ("x", "y")
    state_units = ("1", "1")
    PARAMETERS = ("rate",)
    Params = None
    rate: float = 0.5

    def __post_init__(self):
        self.set_parameters(rate=self.rate)

    def rhs(self, t, s):
        return np.stack([self.rate * s[:, 0], -s[:, 1]], axis=-1)

    def jacobian(self, t, s):
        return np.broadcast_to(np.diag([self.rate[0], -1.0]), (len(s), 2, 2)).copy()

    def characteristic_period(self):
        return np.full(self.n_traj, 0.05)  # an average over LYAPUNOV_PERIODS × 0.05 = 10 time units

    def may_be_chaotic(self):
        return True


def _case_valid_lyapunov_times():
    # The valid time (3, as above) times λ1. Benettin's estimate from v0 = (1, 1)/√2 after a transient τ = T/10
    # over T: (1/T) ln(‖(e^{a(T+τ)}, e^{−(T+τ)})‖ / ‖(e^{aτ}, e^{−τ})‖) = 0.4976 for a = 0.5, T = 10 (the
    # renormalisations telescope). Counting in Lyapunov *times* 1/λ1 instead of multiplying would give 6.03;
    # the rate of the stable direction, −3. The integrator's rtol 1e-10 over 200 renormalisations: 1e-8.
    a, horizon = 0.5, LYAPUNOV_PERIODS * 0.05
    tau = horizon / 10
    lam = np.log(np.hypot(np.exp(a * (horizon + tau)), np.exp(-(horizon + tau)))
                 / np.hypot(np.exp(a * tau), np.exp(-tau))) / horizon
    case = _case_valid_time()
    return dict(case, system=Saddle(rate=a), expected=[3.0 * lam], rtol=1e-8)


def _case_lyapunov_nrmse():
    # Gauthier et al.'s NRMSE over one Lyapunov time. λ1 = 0.4976 (above), so 1/λ1 = 2.01 covers the first two
    # closed-loop steps (1 and 2 steps after the loop closed, on a grid of 1); the errors beyond it (10) do not
    # count. Inside: (0.3, 0.4) and (0, 0.5), mean square over steps and components 0.5/4 = 0.125, divided by the
    # summed variance V of the true orbit from the first state over LYAPUNOV_PERIODS periods (here x = e^{t/2},
    # y = e^{−t} on [0, 10], read 20 times a period). Summing over components would give √2 times more; counting
    # every step, 6.3 times; the truth's own spread over the five steps (V = 2 + 0) a different scale altogether.
    a = 0.5
    case = _case_valid_lyapunov_times()
    true = _series([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])
    pred = true + np.stack([[0.3, 0.0, 10, 10, 10], [0.4, 0.5, 10, 10, 10]], axis=-1)[None]
    t = 0.05 / 20 * np.arange(20 * LYAPUNOV_PERIODS + 1)
    variance = np.exp(a * t).var() + np.exp(-t).var()
    assert 2 < 3 / case["expected"][0] < 3  # the horizon 1/λ1 (the case above reads 3 λ1) lies between 2 steps and 3
    return dict(pred=pred, true=true, time=T5, system=Saddle(rate=a), expected=[np.sqrt(0.125 / variance)],
                rtol=1e-8)


KNOWN = {"lyapunov_nrmse": _case_lyapunov_nrmse, "valid_lyapunov_times": _case_valid_lyapunov_times, "rmse": _case_rmse, "nrmse": _case_nrmse, "max_error": _case_max_error, "valid_time": _case_valid_time,
         "valid_periods": _case_valid_periods, "energy_error": _case_energy_error}


def test_every_registered_metric_has_a_known_answer():
    missing = sorted(set(METRICS) - set(KNOWN))
    assert not missing, f"add a known-answer case for {missing} to this module"


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_metric_known_answer(name):
    case = KNOWN[name]()
    value = METRICS[name].compute(true=case["true"], pred=case["pred"], time=case["time"], system=case.get("system"),
                                  valid_fraction=case.get("valid_fraction", 0.1))
    # Each expected value is exact in binary arithmetic or rounding away from it (1e-12 relative), or says why not.
    np.testing.assert_allclose(value, case["expected"], rtol=case.get("rtol", 1e-12), atol=0)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_a_diverged_prediction_never_scores_well(name):
    # A NaN anywhere in a trajectory's prediction (a divergence) makes its score NaN, or its valid time end there.
    case = KNOWN[name]()
    pred = case["pred"].copy()
    pred[0, 1] = np.nan
    value = np.asarray(METRICS[name].compute(true=case["true"], pred=pred, time=case["time"],
                                             system=case.get("system"), valid_fraction=case.get("valid_fraction", 0.1)))
    if METRICS[name].better == "min":
        assert np.isnan(value).all()
    else:
        assert value.max() <= case["time"][1] - case["time"][0] + 1e-12  # valid only before the NaN


def test_summaries_aggregate_as_the_registry_says():
    # Over trajectories: the mean for RMSE, the max for the max error, the median for the valid time.
    values = np.array([[1.0], [2.0], [6.0]])
    assert METRICS["rmse"].summarise(values) == [3.0]
    assert METRICS["max_error"].summarise(values) == [6.0]
    assert METRICS["valid_time"].summarise(values[:, 0]) == 2.0
    assert METRICS["valid_time"].key == "valid_time_median" and METRICS["rmse"].key == "rmse"
