"""Each extension point takes a new kind of thing defined here alone, with no change anywhere else in physrnn:
a system (with its exact solution), a model, a metric and a report figure. Each is registered for one test and
removed after it."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import ArrayLike

import physrnn as pr
from physrnn.figures import FIGURES, Figure, new_figure
from physrnn.metrics import METRICS, Metric
from physrnn.models import StepModel
from physrnn.models.configs import _MODELS
from simulators import EnsembleParams, ParamSpec, PhysicalSystem
from simulators.params import check_range, fixed, uniform
from simulators.system import _REGISTRY
from tests.physrnn.helpers import TINY_STUDY


# ------------------------------------------------------------------------------------------------ a new system
@dataclass(frozen=True, kw_only=True)
class RotationParams(EnsembleParams):
    """Ensemble specs of the damped rotation."""

    decay_rate: ParamSpec = fixed(0.1)
    angular_frequency: ParamSpec = fixed(1.0)
    x0: ParamSpec = uniform(-1.0, 1.0)
    y0: ParamSpec = uniform(-1.0, 1.0)

    INITIAL_STATE = ("x0", "y0")

    def __post_init__(self):
        check_range("decay_rate", self.decay_rate, low=0.0)

    def build(self, values):
        return DampedRotation(**values)


@dataclass(frozen=True, kw_only=True, eq=False)
class DampedRotation(PhysicalSystem):
    r"""A damped rotation in the plane, :math:`\dot s = \begin{pmatrix} -\gamma & -\omega \\ \omega & -\gamma
    \end{pmatrix} s`, solved exactly by :math:`s(t) = e^{-\gamma t} R(\omega t)\, s_0`."""

    system = "rotation"
    state_names = ("x", "y")
    state_units = ("L", "L")
    PARAMETERS = ("decay_rate", "angular_frequency")
    Params = RotationParams
    decay_rate: ArrayLike = 0.1
    angular_frequency: ArrayLike = 1.0

    def __post_init__(self):
        self.set_parameters(decay_rate=self.decay_rate, angular_frequency=self.angular_frequency)

    def rhs(self, t, s):
        g, w = (p if s.ndim > 1 else p[0] for p in (self.decay_rate, self.angular_frequency))
        x, y = s[..., 0], s[..., 1]
        return np.stack([-g * x - w * y, w * x - g * y], axis=-1)

    def exact(self, initial_state, time):
        t = np.asarray(time, float) - time[0]
        s0 = np.asarray(initial_state, float)
        if s0.shape[0] != self.n_traj:
            return self.broadcast(s0.shape[0]).exact(s0, time)
        decay = np.exp(-self.decay_rate[:, None] * t)
        c, s = np.cos(self.angular_frequency[:, None] * t), np.sin(self.angular_frequency[:, None] * t)
        x0, y0 = s0[:, :1], s0[:, 1:]
        return np.stack([decay * (c * x0 - s * y0), decay * (s * x0 + c * y0)], axis=-1)

    def characteristic_period(self):
        return 2 * np.pi / self.angular_frequency


@pytest.fixture
def rotation():
    pr.register_system(DampedRotation)
    yield DampedRotation
    _REGISTRY.pop("rotation")


ROTATION_STUDY = """
[study]
name = "rotation"
description = "A system defined in a test file."
seeds = [0]
[features]
observation = "full"
[diagnostics]
long_steps = 300
[train]
system = "rotation"
n_traj = 8
dt = 0.1
t_end = 10.0
seed = 1
params = { decay_rate = { uniform = [0.05, 0.1] }, angular_frequency = 1.3 }
[test]
system = "rotation"
n_traj = 3
dt = 0.1
t_end = 20.0
seed = 2
params = { decay_rate = { uniform = [0.05, 0.1] }, angular_frequency = 1.3 }
[models.esn]
units = 40
washout = 10
[targets]
rk4 = { max_error = 1e-4 }
"""


def test_the_closed_form_of_the_test_system_is_an_oracle(rotation):
    # The system's own closed form against the reference integrator (rtol 1e-12 per component): if the test
    # system were wrong, the study below would measure against a wrong truth.
    system = DampedRotation(decay_rate=[0.1, 0.3], angular_frequency=[1.0, 2.5])
    t = np.linspace(0, 10, 201)
    s0 = np.array([[1.0, 0.0], [0.3, -0.7]])
    exact, reference = pr.solve(system, s0, t), pr.solve(system, s0, t, method="reference")
    np.testing.assert_allclose(exact, reference, rtol=0, atol=1e-10)  # |s| <= 1: 1e-12 relative per step, summed


def test_a_system_defined_here_runs_a_study_end_to_end(rotation, tmp_path):
    assert "rotation" in pr.system_names()
    path = tmp_path / "rotation.toml"
    path.write_text(ROTATION_STUDY)
    result = pr.run_study(path, root=tmp_path / "root", log=lambda m: None)
    report = pr.write_report(result, tmp_path / "report")
    summary = {s["label"]: s for s in result.summary}
    assert set(summary) == {"persistence", "euler", "rk4", "linear", "esn"}
    # RK4's one-step map differs from the flow e^{hλ} by (hλ)⁵/120 (|λ| = |−γ + iω| ≈ 1.3, h = 0.1: 3.1e-7 of
    # |s| ≤ √2 per step); accumulated over the 199 closed-loop steps that is at most 8.8e-5 (measured 1.0e-5, the
    # decay shrinking it). Euler's error per step is (hλ)²/2 ≈ 8e-3 of |s|: above 1e-3 over the horizon.
    assert summary["rk4"]["max_error"] < 1e-4 < 1e-3 < summary["euler"]["max_error"]
    # Valid periods come from the system's own characteristic period (2π/ω): the horizon (19.9) in periods.
    assert summary["rk4"]["valid_periods_median_mean"] == pytest.approx(19.9 * 1.3 / (2 * np.pi), rel=1e-12)
    assert "energy_error_mean" not in summary["rk4"]  # the system declares no energy
    assert [(t.label, t.met) for t in result.targets] == [("rk4", True)]
    html = report.read_text()
    assert "Study: rotation" in html and "data:image/png;base64," in html and "rk4" in html
    # The stored result rebuilds the same report on its own.
    again = pr.StudyResult.from_json(result.to_json())
    assert again.summary == result.summary
    assert pr.write_report(again, tmp_path / "again").read_text().count("<img") == html.count("<img")


def test_an_unregistered_system_is_named_in_the_error(tmp_path):
    path = tmp_path / "rotation.toml"
    path.write_text(ROTATION_STUDY)
    with pytest.raises(ValueError, match=r"unknown system 'rotation'; choose one of oscillator, eigen, pendulum"):
        pr.load_study(path)


# ------------------------------------------------------------------------------------------------ a new model
@dataclass(frozen=True, kw_only=True)
class DecayConfig:
    """The settings of the test model.

    Parameters
    ----------
    rate : float
        Fraction of the state lost per unit time.
    """

    rate: float = 0.0


class ExponentialDecay(StepModel):
    """g = −rate · o: a model with one setting and nothing to learn, rolled out in NumPy."""

    kind = "decay-test"
    config_class = DecayConfig
    learns = False

    def _fit(self, train, validation, **options):
        pass

    def _rollout(self, data, context, n_steps, bound):
        out = np.full((data.n_traj, n_steps, data.n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        for i in range(context, n_steps):
            out[:, i] = out[:, i - 1] * (1 - self.config.rate * self.dt_)
        return out, np.full(data.n_traj, -1)


@pytest.fixture
def decay_model():
    pr.register_model("decay-test", DecayConfig, ExponentialDecay, summary="test model")
    yield ExponentialDecay
    _MODELS.pop("decay-test")


def test_a_model_registered_here_is_built_validated_and_studied(decay_model, tmp_path, capsys):
    model = pr.build_model("decay-test", rate=0.5)
    assert isinstance(model, ExponentialDecay) and model.config.rate == 0.5
    with pytest.raises(ValueError, match=r"unknown setting for a decay-test model: speed; allowed: rate"):
        pr.build_model("decay-test", speed=1.0)
    # Its settings and their meaning appear in `physrnn train --help`, generated from its config.
    from physrnn.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "decay-test: test model" in capsys.readouterr().out.replace("\n      rate [0.0]", " rate")
    study = ROTATION_STUDY.replace("rotation", "oscillator").replace("decay_rate = { uniform = [0.05, 0.1] }, "
                                                                     "angular_frequency = 1.3", "damping = 0.2")
    study = study.replace("[models.esn]\nunits = 40\nwashout = 10", "[models.mine]\nkind = \"decay-test\"\nrate = 0.1")
    path = tmp_path / "s.toml"
    path.write_text(study.replace('name = "oscillator"', 'name = "mine"'))
    result = pr.run_study(path, root=tmp_path / "root", log=lambda m: None)
    assert result.model("mine")["n_seeds"] == 1 and np.isfinite(result.model("mine")["rmse_mean"]).all()


def test_a_model_takes_its_settings_by_name_or_as_a_config(decay_model):
    assert ExponentialDecay(rate=0.2).config == ExponentialDecay(DecayConfig(rate=0.2)).config
    with pytest.raises(TypeError, match=r"give ExponentialDecay a config or settings by name, not both"):
        ExponentialDecay(DecayConfig(), rate=0.2)


# ------------------------------------------------------------------------------------------------ a new metric
def _final_error(*, true, pred, **_):
    return np.abs(pred[:, -1] - true[:, -1])


@pytest.fixture
def final_error():
    metric = pr.register_metric(Metric("final_error", "final error", _final_error, per_component=True))
    yield metric
    METRICS.pop("final_error")




def test_a_metric_registered_here_reaches_summaries_targets_and_reports(final_error, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY + "[targets]\neuler = { final_error = 1e-9 }\n")
    result = pr.run_study(path, root=tmp_path, log=lambda m: None)
    euler = result.model("euler")
    runs = [r for r in result.runs if r.label == "euler"]
    # The per-trajectory values are |pred − true| at the last step; the summary is their mean over trajectories.
    expected = np.mean(runs[0].scores.per_trajectory["final_error"], axis=0)
    np.testing.assert_array_equal(euler["final_error_mean"], expected)
    assert (expected > 1e-4).all()  # Euler at Δt = 0.1 misses the end point by ~1e-2
    (target,) = result.targets
    assert target.metric == "final_error" and not target.met and target.worst == pytest.approx(expected.max())
    markdown = pr.write_report(result, tmp_path / "report").with_suffix(".md").read_text()
    assert "final error x" in markdown and "final error v" in markdown


# ------------------------------------------------------------------------------------------------ a new figure
@pytest.fixture
def endpoint_figure():
    def collect(inputs):
        return {label: r.observed[:, -1].tolist() for label, r in inputs.rollouts.items()}

    def draw(result, colours):
        fig, ax = new_figure(figsize=(4, 4))
        for label, points in result.figures["endpoints"].items():
            ax.plot(*np.asarray(points).T, "o", color=colours[label], label=label)
        return fig

    figure = pr.register_figure(Figure("endpoints", lambda r: "endpoints" in r.figures, draw, collect))
    yield figure
    FIGURES.pop("endpoints")


def test_a_figure_registered_here_is_collected_stored_and_drawn(endpoint_figure, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY)
    result = pr.run_study(path, root=tmp_path, log=lambda m: None)
    rk4_end = result.figures["endpoints"]["rk4"]
    assert len(rk4_end) == 2 and math.isfinite(rk4_end[0][0])
    page = pr.write_report(pr.StudyResult.from_json(result.to_json()), tmp_path / "report")
    assert (page.parent / "figures" / "endpoints.png").is_file()
