"""Ensemble configs: seeded sampling, determinism, validation of every key."""

import numpy as np
import pytest

from simulators.ensemble import EnsembleConfig, ParamSpec, generate

BASE = {"system": "oscillator", "n_traj": 6, "dt": 0.1, "t_end": 2.0, "seed": 1}


def _config(**overrides):
    raw = {**BASE, **overrides}
    return EnsembleConfig.from_dict(raw)


def test_same_seed_same_arrays_different_seed_different(driven_config):
    a, b = generate(driven_config), generate(driven_config)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.drive, b.drive)
    other = generate(EnsembleConfig.from_dict({**driven_config.to_dict(), "seed": 8}))
    assert not np.array_equal(a.states, other.states)
    assert not np.array_equal(a.params["damping"], other.params["damping"])


def test_adding_a_parameter_does_not_change_the_others():
    a = generate(_config(params={"x0": {"uniform": [-1, 1]}}))
    b = generate(_config(params={"x0": {"uniform": [-1, 1]}, "damping": {"uniform": [0, 1]}}))
    # Each spec has its own stream keyed by seed and name.
    np.testing.assert_array_equal(a.params["x0"], b.params["x0"])
    np.testing.assert_array_equal(a.params["v0"], b.params["v0"])


def test_batching_does_not_change_the_data(driven_config):
    whole = generate(driven_config)
    batched = generate(driven_config, batch_size=5)
    np.testing.assert_array_equal(whole.states, batched.states)
    np.testing.assert_array_equal(whole.drive, batched.drive)


def test_states_are_the_closed_form_of_the_recorded_params(driven):
    from simulators import LinearOscillator, solve

    p = driven.params
    osc = LinearOscillator(damping=p["damping"], natural_frequency=p["natural_frequency"],
                           drive_amplitude=p["drive_amplitude"], drive_frequency=p["drive_frequency"],
                           drive_phase=p["drive_phase"])
    s0 = np.stack([p["x0"], p["v0"]], axis=1)
    np.testing.assert_array_equal(driven.states, solve(osc, s0, driven.time))
    # The drive is the known input F(t) = F cos(Ωt + φ).
    expected = p["drive_amplitude"] * np.cos(p["drive_frequency"] * driven.time + p["drive_phase"])
    np.testing.assert_allclose(driven.drive[..., 0], expected, rtol=0, atol=1e-15)


def test_parameter_specs():
    n = 1000
    assert ParamSpec.parse("a", 0.5).sample(n, 0, "a").tolist() == [0.5] * n
    u = ParamSpec.parse("a", {"uniform": [1.0, 2.0]}).sample(n, 0, "a")
    assert 1.0 <= u.min() and u.max() < 2.0
    lu = ParamSpec.parse("a", {"loguniform": [1e-3, 1e3]}).sample(n, 0, "a")
    # A log-uniform draw has about half its values below the geometric mean (1 here): binomial ±5σ.
    assert abs(np.mean(lu < 1.0) - 0.5) < 5 * 0.5 / np.sqrt(n)
    c = ParamSpec.parse("a", {"choice": [1.0, 3.0]}).sample(n, 0, "a")
    assert set(np.unique(c)) == {1.0, 3.0}
    np.testing.assert_array_equal(ParamSpec.parse("a", {"values": [1, 2, 3]}).sample(3, 0, "a"), [1, 2, 3])
    np.testing.assert_array_equal(ParamSpec.parse("a", {"linspace": [0, 1]}).sample(5, 0, "a"),
                                  [0, 0.25, 0.5, 0.75, 1])


def test_the_spec_helpers_a_system_declares_its_defaults_with():
    # fixed and uniform build the specs a system's EnsembleParams declares; they are the parsed forms.
    from simulators.params import fixed, uniform

    assert fixed(0.7) == ParamSpec.parse("a", 0.7) and fixed(0.7).to_config() == 0.7
    assert uniform(1, 2.5) == ParamSpec.parse("a", {"uniform": [1.0, 2.5]})
    assert uniform(1, 2.5).to_config() == {"uniform": [1.0, 2.5]}
    draw = uniform(1, 2.5).sample(500, 3, "a")
    assert 1.0 <= draw.min() < 1.1 and 2.4 < draw.max() < 2.5
    np.testing.assert_array_equal(fixed(0.7).sample(3, 0, "a"), [0.7] * 3)


def test_a_grouping_a_system_lacks_is_named():
    from simulators import LinearOscillator, Pendulum

    with pytest.raises(ValueError, match=r"^the oscillator system has no grouping 'colour'$"):
        LinearOscillator().groups("colour")
    with pytest.raises(ValueError, match=r"^the pendulum system has no grouping 'regime'$"):
        Pendulum().groups("regime")


def test_multi_term_drive_and_config_round_trip():
    cfg = _config(params={"drive_amplitude": [0.5, 0.1], "drive_frequency": [1.3, {"uniform": [2.0, 3.0]}]})
    tr = generate(cfg)
    assert tr.params["drive_amplitude"].shape == (6, 2)
    assert tr.drive_names == ("force",) and tr.drive.shape == (6, 21, 1)
    # The force is the sum of both terms.
    t = tr.time
    expected = (0.5 * np.cos(1.3 * t)[None, :]
                + 0.1 * np.cos(tr.params["drive_frequency"][:, 1:] * t[None, :]))
    np.testing.assert_allclose(tr.drive[..., 0], expected, rtol=0, atol=1e-15)
    assert EnsembleConfig.from_dict(cfg.to_dict()) == cfg


def test_eigen_shared_and_per_trajectory_matrices(eigen):
    assert eigen.params["matrix"].shape == (8, 5, 5)
    assert not np.array_equal(eigen.params["matrix"][0], eigen.params["matrix"][1])
    np.testing.assert_allclose(eigen.params["eigenvalues"], np.linalg.eigvalsh(eigen.params["matrix"]), atol=0)
    shared = generate(EnsembleConfig.from_dict({"system": "eigen", "n_traj": 3, "dt": 0.1, "n_steps": 3,
                                                "params": {"size": 4, "shared_matrix": True}}))
    np.testing.assert_array_equal(shared.params["matrix"][0], shared.params["matrix"][2])


def test_matrix_seed_shares_one_problem_and_negate_flows_with_minus_a():
    def ens(seed, **params):
        return generate(EnsembleConfig.from_dict({"system": "eigen", "n_traj": 3, "dt": 0.1, "n_steps": 3,
                                                  "seed": seed, "params": {"size": 4, **params}}))

    train, test = ens(1, matrix_seed=9), ens(2, matrix_seed=9)
    np.testing.assert_array_equal(train.params["matrix"][0], test.params["matrix"][0])  # one problem...
    assert not np.array_equal(train.params["x0"], test.params["x0"])  # ...from different starts
    assert not np.array_equal(ens(1).params["matrix"][0], train.params["matrix"][0])  # default: the ensemble seed
    negated = ens(2, matrix_seed=9, negate=True)
    np.testing.assert_array_equal(negated.params["matrix"][0], -test.params["matrix"][0])
    # The flow of -A ends on the eigenvector of lambda_min(A): its top eigenvalue is -lambda_min(A).
    np.testing.assert_allclose(negated.params["eigenvalues"][0, -1], -np.linalg.eigvalsh(test.params["matrix"][0])[0],
                               rtol=1e-14)
    with pytest.raises(ValueError, match=r"matrix_seed is for a random matrix"):
        EnsembleConfig.from_dict({"system": "eigen", "n_traj": 1, "dt": 0.1, "n_steps": 2,
                                  "params": {"size": 1, "matrix": [[1.0]], "matrix_seed": 3}})
    with pytest.raises(TypeError, match=r"negate must be true or false, got 'yes'"):
        EnsembleConfig.from_dict({"system": "eigen", "n_traj": 1, "dt": 0.1, "n_steps": 2,
                                  "params": {"negate": "yes"}})


def test_auto_horizon_from_spectral_gap():
    from simulators import convergence_time

    cfg = EnsembleConfig.from_dict({"system": "eigen", "n_traj": 4, "dt": 0.5, "t_end": "auto", "seed": 2,
                                    "params": {"size": 4, "shared_matrix": False}})
    tr = generate(cfg)
    needed = convergence_time(tr.params["matrix"], initial_norm=tr.params["initial_norm"]).max()
    assert needed <= tr.time[-1] < needed + cfg.dt


@pytest.mark.parametrize(
    "raw,error,match",
    [
        ({**BASE, "colour": "red"}, ValueError, r"unknown key in the ensemble config: colour; allowed: system"),
        ({k: v for k, v in BASE.items() if k != "system"}, ValueError, r"has no 'system'"),
        ({**BASE, "system": "pendulm"}, ValueError, r"unknown system 'pendulm'; choose one of oscillator, eigen, pendulum"),
        ({**BASE, "dt": 0.0}, ValueError, r"dt = 0\.0 must be > 0"),
        ({**BASE, "dt": -0.1}, ValueError, r"dt = -0\.1 must be > 0"),
        ({**BASE, "dt": float("nan")}, ValueError, r"dt = nan is not finite"),
        ({**BASE, "dt": "fast"}, TypeError, r"dt must be a number, got 'fast'"),
        ({**BASE, "n_traj": 0}, ValueError, r"n_traj must be >= 1, got 0"),
        ({**BASE, "n_traj": 2.5}, TypeError, r"n_traj must be an integer, got 2\.5"),
        ({**BASE, "t_end": 2.05}, ValueError, r"t_end = 2\.05 is not a whole number of steps dt = 0\.1"),
        ({**BASE, "n_steps": 5}, ValueError, r"give exactly one of n_steps and t_end"),
        ({**BASE, "t_end": "auto"}, ValueError, r"t_end = \"auto\" is not defined for the oscillator system"),
        ({**BASE, "method": "magic"}, ValueError, r"unknown method 'magic'"),
        ({**BASE, "params": {"dampin": 0.1}}, ValueError, r"unknown key in \[params\] of an oscillator ensemble: "
                                                          r"dampin"),
        ({**BASE, "params": {"damping": -0.1}}, ValueError, r"damping = -0\.1 is out of range; it must be >= 0"),
        ({**BASE, "params": {"damping": {"uniform": [-1, 1]}}}, ValueError, r"reaches -1\.0; it must be >= 0"),
        ({**BASE, "params": {"natural_frequency": 0}}, ValueError, r"natural_frequency = 0\.0 is out of range; "
                                                                   r"it must be > 0"),
        ({**BASE, "params": {"damping": {"uniform": [1.0]}}}, ValueError, r"damping\.uniform must be \[low, high\]"),
        ({**BASE, "params": {"damping": {"uniform": [2, 1]}}}, ValueError, r"has high < low"),
        ({**BASE, "params": {"damping": {"gauss": [0, 1]}}}, ValueError, r"damping: unknown spec 'gauss'"),
        ({**BASE, "params": {"damping": "0.1"}}, TypeError, r"damping must be a number or a one-key table"),
        ({**BASE, "params": {"damping": float("inf")}}, ValueError, r"damping = inf is not finite"),
        ({**BASE, "params": {"drive_amplitude": [1, 2], "drive_frequency": [1, 2, 3]}}, ValueError,
         r"must each give one spec or the same number of drive terms"),
        ({**BASE, "params": {"x0": {"values": [1, 2]}}}, ValueError,
         r"x0\.values has 2 entries but n_traj = 6"),
        ({**BASE, "system": "eigen", "params": {"size": 0}}, ValueError, r"size must be a positive integer, got 0"),
        ({**BASE, "system": "eigen", "params": {"matrix": [[1, 2], [3, 4]]}}, ValueError,
         r"matrix is not symmetric"),
        ({**BASE, "system": "eigen", "params": {"matrix": [[1, 2, 3], [2, 1, 0]]}}, ValueError,
         r"matrix must be square"),
        ({**BASE, "system": "eigen", "params": {"size": 3, "matrix": [[1, 0], [0, 1]]}}, ValueError,
         r"matrix is 2 x 2 but size = 3"),
        ({**BASE, "system": "eigen", "params": {"matrix": "identity"}}, ValueError,
         r"matrix must be \"random\" or a list of rows"),
        ({**BASE, "system": "eigen", "params": {"damping": 0.1}}, ValueError,
         r"unknown key in \[params\] of an eigen ensemble: damping"),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(raw, error, match):
    with pytest.raises(error, match=match):
        generate(EnsembleConfig.from_dict(raw))


def test_each_parameter_draws_from_its_own_stream():
    # Two parameters with the same spec and seed must not get the same values (one stream per parameter name):
    # a shared stream would correlate, say, every damping with its initial position exactly.
    config = EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 50, "dt": 0.1, "n_steps": 2, "seed": 3,
                                       "params": {"damping": {"uniform": [0.0, 1.0]}, "x0": {"uniform": [0.0, 1.0]},
                                                  "v0": {"uniform": [0.0, 1.0]}}})
    system, x0 = config.sample()
    assert abs(np.corrcoef(system.damping, x0[:, 0])[0, 1]) < 0.5 and abs(np.corrcoef(x0[:, 0], x0[:, 1])[0, 1]) < 0.5


@pytest.mark.parametrize("system, params, match", [
    ("kepler", {"gravitational_parameter": -1.0}, r"^gravitational_parameter = -1\.0 is out of range; it must be > 0$"),
    ("kepler", {"semi_major_axis": 0.0}, r"^semi_major_axis = 0\.0 is out of range; it must be > 0$"),
    ("kepler", {"eccentricity": -0.1}, r"^eccentricity = -0\.1 is out of range; it must be >= 0$"),
    ("kepler", {"eccentricity": {"uniform": [0.2, 1.0]}}, r"reaches 1; bound orbits need e < 1$"),
    ("pendulum", {"natural_frequency": 0.0}, r"^natural_frequency = 0\.0 is out of range; it must be > 0$"),
    ("pendulum", {"damping": -0.3}, r"^damping = -0\.3 is out of range; it must be >= 0$"),
    ("duffing", {"damping": -0.3}, r"^damping = -0\.3 is out of range; it must be >= 0$"),
    ("vanderpol", {"mu": -0.5}, r"^mu = -0\.5 is out of range; it must be >= 0$"),
    ("lotka-volterra", {"alpha": 0.0}, r"^alpha = 0\.0 is out of range; it must be > 0$"),
    ("lotka-volterra", {"delta": -2.0}, r"^delta = -2\.0 is out of range; it must be > 0$"),
    ("lotka-volterra", {"x0": -1.0}, r"^x0 = -1\.0 is out of range; it must be > 0$"),
])
def test_each_nonlinear_system_refuses_its_own_bad_parameters_by_name(system, params, match):
    raw = {"system": system, "n_traj": 2, "dt": 0.1, "n_steps": 3, "seed": 0, "params": params}
    with pytest.raises(ValueError, match=match):
        generate(EnsembleConfig.from_dict(raw))


@pytest.mark.parametrize("make", [
    lambda s: s.Kepler(gravitational_parameter=np.ones((2, 2))),
    lambda s: s.Pendulum(natural_frequency=np.ones((2, 2))),
    lambda s: s.LotkaVolterra(alpha=np.ones((2, 2))),
    lambda s: s.Pendulum(damping=np.ones((2, 2))),
    lambda s: s.VanDerPol(mu=np.ones((2, 2))),
], ids=["kepler", "pendulum", "lotka-volterra", "pendulum-damping", "vanderpol"])
def test_a_system_refuses_a_parameter_array_of_two_dimensions(make):
    import simulators

    with pytest.raises(ValueError, match=r"must have at most 1 dimension\(s\), got shape \(2, 2\)"):
        make(simulators)


@pytest.mark.parametrize("make, match", [
    (lambda s: s.VanDerPol(mu=[0.5, -0.5]), r"mu.* must be >= 0"),
    (lambda s: s.Pendulum(damping=-0.1), r"damping.* must be >= 0"),
    (lambda s: s.Duffing(damping=-0.1), r"damping.* must be >= 0"),
    (lambda s: s.Kepler(gravitational_parameter=0.0), r"gravitational_parameter.* must be > 0"),
    (lambda s: s.Duffing(linear_stiffness=np.inf), r"^linear_stiffness .*not finite"),
], ids=["vanderpol", "pendulum", "duffing", "kepler", "duffing-inf"])
def test_a_system_built_directly_checks_its_bounds(make, match):
    import simulators

    with pytest.raises(ValueError, match=match):
        make(simulators)


def test_a_system_rebuilt_from_too_few_parameters_names_the_missing_ones():
    from simulators import Pendulum

    with pytest.raises(ValueError, match=r"^the pendulum system needs parameters natural_frequency, drive_amplitude, "
                                         r"drive_frequency, drive_phase, which the data lack$"):
        Pendulum.from_params({"damping": np.array([0.1])})


def test_the_integrators_tolerances_of_a_config_reach_the_solver():
    # A non-default rtol and atol change the reference solution (coarse ones by ~1e-5); the ensemble must be
    # exactly the solve at those tolerances, batch by batch.
    from simulators import solve

    raw = {**BASE, "method": "reference", "rtol": 1e-4, "atol": 1e-3}
    config = EnsembleConfig.from_dict(raw)
    tr = generate(config, batch_size=1)
    system = config.sample()[0].broadcast(6)
    for i in range(6):
        direct = solve(system.take(slice(i, i + 1)), tr.states[i:i + 1, 0], tr.time, method="reference",
                       rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(tr.states[i:i + 1], direct)
    fine = generate(EnsembleConfig.from_dict({**raw, "atol": 1e-12}), batch_size=1)
    assert np.abs(fine.states - tr.states).max() > 1e-7


def test_a_non_finite_solution_names_its_trajectory_across_batches_and_tolerates_empty_parameters():
    from simulators.ensemble import _check_finite

    class Part:  # a batch of three, one of whose parameters is an empty (no-term) block
        def params(self):
            return {"gain": np.array([1.0, 3e300, 2.0]), "terms": np.empty((3, 0))}

    states = np.zeros((3, 5, 2))
    states[1, 3:, 0] = np.inf
    with pytest.raises(ValueError, match=r"^the solution is not finite for trajectory 7 from t = 0\.3, with "
                                         r"gain = 3e\+300, x0 = \[4, 5\], terms = \[\]; these values overflow"):
        _check_finite(Part(), np.array([[0.0, 1.0], [4.0, 5.0], [0.0, 0.0]]), states, np.arange(5) / 10, start=6)


def test_a_reference_ensemble_records_its_integrator_and_tolerances():
    tr = generate(EnsembleConfig.from_dict({**BASE, "method": "reference", "rtol": 1e-9, "atol": 1e-11}))
    assert (tr.attrs["truth"], tr.attrs["rtol"], tr.attrs["atol"]) == ("reference", 1e-9, 1e-11)
    assert tr.attrs["integrator"] == "scipy DOP853"
    rk4 = generate(EnsembleConfig.from_dict({**BASE, "method": "rk4"}))
    assert rk4.attrs["truth"] == "numerical" and "integrator" not in rk4.attrs


def test_a_foreign_file_where_a_shard_belongs_is_replaced(tmp_path):
    import h5py

    from simulators.ensemble import simulate_shard

    config = EnsembleConfig.from_dict(BASE)
    path = tmp_path / "shard.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1.0]  # no config, no shard: not this shard
    simulate_shard(config, path, slice(0, 3))
    from simulators import read_trajectories

    np.testing.assert_array_equal(read_trajectories(path).states, generate(config).states[:3])


def test_a_one_element_list_spec_is_named_as_the_parameter_itself():
    # a drive of one term given as a list of one spec is named as the parameter, a term of two by its index
    with pytest.raises(ValueError, match=r"^drive_frequency: unknown spec 'gauss'"):
        EnsembleConfig.from_dict({**BASE, "params": {"drive_frequency": [{"gauss": [0, 1]}]}})
    with pytest.raises(ValueError, match=r"^drive_frequency\[1\]: unknown spec 'gauss'"):
        EnsembleConfig.from_dict({**BASE, "params": {"drive_frequency": [1.0, {"gauss": [0, 1]}]}})
    with pytest.raises(ValueError, match=r"^unknown key in \[params\] of an oscillator ensemble: dampin"):
        EnsembleConfig.from_dict({**BASE, "params": {"dampin": 0.1}})
    with pytest.raises(ValueError, match=r"^unknown key in \[params\] of a pendulum ensemble: dampin"):
        EnsembleConfig.from_dict({**BASE, "system": "pendulum", "params": {"dampin": 0.1}})
