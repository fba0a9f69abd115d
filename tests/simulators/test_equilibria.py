"""Equilibria of every system: the vector field vanishes there, they exist exactly where the physics says, and the
linearisation there has the textbook rates (what the step-map diagnostics compare a learned Jacobian with)."""

import numpy as np
import pytest

from simulators import EigenFlow
from simulators.system import get_system, system_names

CASES = {  # one ensemble per system, spanning the regimes where equilibria come and go
    "oscillator": dict(damping=[0.0, 0.3], natural_frequency=[1.0, 2.0], drive_amplitude=[0.0, 0.5],
                       drive_frequency=1.0),
    "pendulum": dict(damping=[0.0, 0.1, 0.0], natural_frequency=[1.0, 2.0, 1.0], drive_amplitude=[0.0, 0.0, 0.4],
                     drive_frequency=1.0),
    "duffing": dict(linear_stiffness=[-1.0, 1.0, 2.0, 0.0], cubic_stiffness=[1.0, 1.0, -0.5, 1.0]),
    "vanderpol": dict(mu=[0.5, 3.0]),
    "lotka-volterra": dict(alpha=[1.0, 2.0], beta=[0.5, 1.0], gamma=[3.0, 1.0], delta=[1.5, 0.25]),
    "eigen": dict(matrix=np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, -1.0]])),
    "lorenz63": dict(sigma=[10.0, 9.0, 10.0], rho=[28.0, 31.0, 0.5], beta=[8 / 3, 2.2, 8 / 3]),
}


@pytest.mark.parametrize("name", sorted(system_names()))
def test_the_vector_field_vanishes_at_every_equilibrium(name):
    if name not in CASES:
        assert get_system(name)(**{}).equilibria() == {}, f"{name} declares equilibria this test does not cover"
        return
    system = get_system(name)(**CASES[name])
    points = system.equilibria()
    assert points, f"{name} declares no equilibrium"
    for label, states in points.items():
        assert states.shape == (system.n_traj, system.n_state), label
        ok = ~np.isnan(states).any(axis=1)
        assert ok.any(), f"{label} exists for no trajectory of the test ensemble"
        f = system.take(np.flatnonzero(ok)).rhs(0.0, states[ok])
        # rounding of sin(π), ±√(−α/β) and the eigenvector: a few ulps of the field's scale (order 1 here; the
        # products x·y of Lorenz's C± are 72, whose ulp is 1.4e-14)
        scale = max(1.0, float(np.abs(states[ok]).max()) ** 2 / 10)
        np.testing.assert_allclose(f, 0.0, atol=1e-14 * scale, err_msg=label)


def test_equilibria_exist_where_the_physics_says():
    osc = get_system("oscillator")(**CASES["oscillator"]).equilibria()["rest"]
    assert not np.isnan(osc[0]).any() and np.isnan(osc[1]).all()  # a driven oscillator has no rest point
    pend = get_system("pendulum")(**CASES["pendulum"]).equilibria()
    assert np.isnan(pend["bottom"][2]).all() and pend["top"][0].tolist() == [np.pi, 0.0]
    duff = get_system("duffing")(**CASES["duffing"]).equilibria()
    # double well (α < 0 < β): ±1; hardening and α = 0: none; softening (β < 0 < α): saddles at ±2
    np.testing.assert_allclose(duff["x+"][:, 0], [1.0, np.nan, 2.0, np.nan])
    np.testing.assert_allclose(duff["x-"][:, 0], [-1.0, np.nan, -2.0, np.nan])


def test_linearisations_have_the_textbook_rates():
    pend = get_system("pendulum")(natural_frequency=[1.0, 2.0])
    lam = np.linalg.eigvals(pend.jacobian(0.0, pend.equilibria()["bottom"]))
    np.testing.assert_allclose(np.sort(lam.imag, axis=1), [[-1, 1], [-2, 2]], atol=1e-15)  # ±iω0
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(pend.jacobian(0.0, pend.equilibria()["top"])).real,
                                       axis=1), [[-1, 1], [-2, 2]], atol=1e-15)  # the saddle: ±ω0
    duff = get_system("duffing")(linear_stiffness=-1.0, cubic_stiffness=1.0)
    lam = np.linalg.eigvals(duff.jacobian(0.0, duff.equilibria()["x+"]))
    np.testing.assert_allclose(np.sort(lam.imag)[0], [-np.sqrt(2), np.sqrt(2)], atol=1e-15)  # ω = √(−2α)
    lv = get_system("lotka-volterra")(alpha=2.0, gamma=3.0, beta=0.5, delta=1.5)
    lam = np.linalg.eigvals(lv.jacobian(0.0, lv.equilibria()["coexistence"]))
    np.testing.assert_allclose(np.sort(lam.imag)[0], [-np.sqrt(6), np.sqrt(6)], atol=1e-14)  # ω = √(αγ)
    flow = EigenFlow(matrix=CASES["eigen"]["matrix"])
    w = np.linalg.eigvalsh(flow.matrix[0])
    for label in ("+v_max", "-v_max"):
        x = flow.equilibria()[label]
        np.testing.assert_allclose(np.linalg.norm(x), 1.0, rtol=1e-15)
        rates = np.sort(np.linalg.eigvals(flow.jacobian(0.0, x)).real[0])
        np.testing.assert_allclose(rates, np.sort(w - w[-1]), atol=1e-13)  # the gaps λ_i − λmax (and 0)


def test_the_eigen_flow_declares_its_conserved_norm():
    flow = EigenFlow(matrix=CASES["eigen"]["matrix"])
    x0 = np.array([[0.3, -0.4, 1.2], [1.0, 0.0, 0.0]])
    states = flow.exact(x0, np.linspace(0, 5, 11))
    norm = flow.invariants()["norm"](states)
    assert flow.conserves_invariants().all() and norm.shape == (2, 11)
    np.testing.assert_allclose(norm, np.repeat(np.linalg.norm(x0, axis=1)[:, None], 11, axis=1), rtol=1e-14)  # exact: rounding only
