"""The eigen flow: closed form against expm and the integrator, norm conservation, eigenpairs against eigh."""

import numpy as np
import pytest

from simulators import (EigenFlow, convergence_time, flow_eigenpairs, random_symmetric, rayleigh_quotient,
                        solve)

from .oracles import eigen_by_expm

SIZES = [2, 3, 5, 8, 13, 20]


def _start(n, seed, norm=1.0):
    x = np.random.default_rng(seed).standard_normal(n)
    return norm * x / np.linalg.norm(x)


@pytest.mark.parametrize("n", SIZES)
def test_closed_form_matches_matrix_exponential(n):
    a = random_symmetric(n, seed=n)
    x0 = _start(n, n, norm=1.3)
    t = np.linspace(0, 10, 41)
    exact = solve(EigenFlow(matrix=a), x0[None], t)[0]
    # Both are unit-scale vectors computed to ~1e-15 each (eigh vs scaling-and-squaring expm).
    np.testing.assert_allclose(exact, eigen_by_expm(a, x0, t), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_closed_form_matches_reference_integrator(n):
    a = random_symmetric(n, seed=100 + n)
    x0 = np.stack([_start(n, s, norm=r) for s, r in ((1, 0.5), (2, 1.0), (3, 1.5))])
    t = np.linspace(0, 10, 101)
    exact = solve(EigenFlow(matrix=a), x0, t)
    ref = solve(EigenFlow(matrix=a), x0, t, method="reference", rtol=1e-12, atol=1e-14)
    # Global error of a 1e-12 local tolerance on an O(1) nonlinear flow over ~10 decay times (measured <1e-10).
    np.testing.assert_allclose(ref, exact, rtol=0, atol=1e-9)


def test_norm_is_conserved():
    a = random_symmetric(6, seed=1)
    x0 = np.stack([_start(6, s, norm=r) for s, r in ((1, 0.5), (2, 1.0), (3, 2.0))])
    t = np.linspace(0, 50, 501)
    norms0 = np.linalg.norm(x0, axis=1)[:, None]
    exact = np.linalg.norm(solve(EigenFlow(matrix=a), x0, t), axis=-1)
    # The closed form normalises explicitly: a few ulp.
    np.testing.assert_allclose(exact, np.broadcast_to(norms0, exact.shape), rtol=1e-14)
    rk4 = np.linalg.norm(solve(EigenFlow(matrix=a), x0, t, method="rk4", substeps=4), axis=-1)
    # RK4 does not conserve it exactly; its drift is its truncation error, ~h⁴ = 4e-6 per unit time at most.
    np.testing.assert_allclose(rk4, np.broadcast_to(norms0, rk4.shape), rtol=1e-6)


def test_rayleigh_quotient_reaches_lambda_max_by_the_convergence_time():
    a = random_symmetric(8, seed=2)
    w, v = np.linalg.eigh(a)
    x0 = v.sum(axis=1) / np.sqrt(8)  # equal O(1) overlap with every eigenvector, as the estimate assumes
    tol = 1e-10
    t_conv = convergence_time(a, initial_norm=1.0, tol=tol)
    x_end = solve(EigenFlow(matrix=a), x0[None], [0.0, t_conv])[0, -1]
    spread = w[-1] - w[0]
    # error = Σ_i (λ1−λi) e^{-2(λ1−λi)t}: each term below spread·tol at t_conv, n−1 of them.
    assert 0 <= w[-1] - rayleigh_quotient(a, x_end) <= 7 * spread * tol


def test_lambda_min_through_minus_a():
    a = random_symmetric(7, seed=3)
    x_end = solve(EigenFlow(matrix=-a), _start(7, 0)[None], [0.0, 200.0])[0, -1]
    assert rayleigh_quotient(a, x_end) == pytest.approx(np.linalg.eigvalsh(a)[0], abs=1e-12)


def test_start_orthogonal_to_top_eigenvector_reaches_the_second():
    # A start orthogonal to v_max stays so (the complement is invariant) and the flow reaches λ2. In floating
    # point "orthogonal" must be exact: a rounding-level overlap ε with v_max grows as ε e^{(λ1 − λ2) t} and wins
    # by t = 300. So A is a permuted diagonal matrix, whose eigenvectors (unit vectors) eigh returns exactly,
    # and the start has an exact zero in the top eigenvector's component.
    w = np.array([-1.3, -0.4, 0.2, 0.65, 0.9, 1.47])
    perm = np.array([3, 0, 5, 1, 4, 2])
    a = np.diag(w)[np.ix_(perm, perm)]
    x0 = _start(6, 1)
    x0[int(np.argmax(np.diag(a)))] = 0.0
    x_end = solve(EigenFlow(matrix=a), x0[None], [0.0, 300.0])[0, -1]
    assert rayleigh_quotient(a, x_end) == pytest.approx(w[-2], abs=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_flow_eigenpairs_match_eigh(n, which):
    a = random_symmetric(n, seed=200 + n)
    tol = 1e-10
    found = flow_eigenpairs(a, which=which, tol=tol, seed=n)
    assert found.converged.all()
    w, v = np.linalg.eigh(a)
    order = np.argsort(-w) if which == "largest" else np.argsort(w)
    scale = np.linalg.norm(a)
    # Symmetric A: some eigenvalue lies within the residual ‖Av − ρv‖ ≤ tol·‖A‖_F of each Rayleigh quotient.
    np.testing.assert_allclose(found.eigenvalues, w[order], rtol=0, atol=tol * scale * (1 + 1e-9))
    for j, i in enumerate(order):
        gap = np.min(np.abs(np.delete(w, i) - w[i])) if n > 1 else np.inf
        sin_angle = np.sqrt(max(0.0, 1 - (v[:, i] @ found.eigenvectors[:, j]) ** 2))
        # Davis–Kahan: sin∠(v, v_true) ≤ ‖residual‖ / gap, plus rounding of the unit vectors.
        assert sin_angle <= found.residuals[j] / gap + 1e-7, (j, sin_angle, found.residuals[j], gap)


def test_nearly_degenerate_top_pair():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    w = np.array([-1.0, -0.3, 0.2, 0.5, 1.0 - 1e-10, 1.0])
    a = (q * w) @ q.T
    found = flow_eigenpairs(a, n_pairs=2, tol=1e-9, seed=0)
    assert found.converged.all()
    # Both top eigenvalues to within the residual tolerance, although their vectors cannot be told apart...
    np.testing.assert_allclose(found.eigenvalues, [1.0, 1.0 - 1e-10], rtol=0, atol=1e-9 * np.linalg.norm(a))
    # ...and the two vectors found span the top eigenspace.
    top = q[:, -2:]
    np.testing.assert_allclose(np.linalg.norm(top.T @ found.eigenvectors, axis=0), 1.0, atol=1e-8)


def test_zero_start_is_an_equilibrium():
    x = solve(EigenFlow(matrix=np.eye(3)), np.zeros((1, 3)), [0.0, 1.0])
    np.testing.assert_array_equal(x, 0.0)


@pytest.mark.parametrize(
    "matrix,error,match",
    [
        ([[1.0, 2.0], [0.0, 1.0]], ValueError, r"matrix is not symmetric: max \|A - A\^T\| = 2"),
        ([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]], ValueError, r"matrix must be square, .* got shape \(2, 3\)"),
        ([1.0, 2.0], ValueError, r"matrix must be square"),
        ([[1.0, np.nan], [np.nan, 1.0]], ValueError, r"matrix\[0, 1\] = nan is not finite"),
        ([["a", "b"], ["b", "a"]], TypeError, r"matrix must be a real number or an array"),
    ],
)
def test_bad_matrices_are_rejected(matrix, error, match):
    with pytest.raises(error, match=match):
        EigenFlow(matrix=matrix)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_pairs=0), r"n_pairs must be an integer from 1 to 3, got 0"),
        (dict(which="middle"), r"which must be 'largest' or 'smallest', got 'middle'"),
        (dict(tol=-1.0), r"tol = -1\.0 is out of range; it must be > 0"),
    ],
)
def test_bad_eigenpair_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flow_eigenpairs(np.eye(3), **kwargs)


def test_flow_eigenpairs_integrates_the_flow_itself_in_time():
    # The reported flow time is the time the exact flow takes from the same start (the first pair's start is
    # ‖x0‖ z/‖z‖ with z the seed's first normal draw) to the residual tolerance, to within two RK4 steps
    # h = 1/(‖A‖_F ‖x0‖²); and ‖x0‖ = 1.7 runs the same iterates 1.7² times faster in flow time.
    a = random_symmetric(4, seed=9)
    scale, norm, tol = np.linalg.norm(a), 1.7, 1e-8
    found = flow_eigenpairs(a, n_pairs=1, tol=tol, initial_norm=norm, seed=5)
    unit = flow_eigenpairs(a, n_pairs=1, tol=tol, initial_norm=1.0, seed=5)
    assert found.flow_time[0] == pytest.approx(unit.flow_time[0] / norm**2, rel=1e-12)
    h = 1.0 / (scale * norm**2)
    z = np.random.default_rng(5).standard_normal(4)
    t = np.linspace(0.0, found.flow_time[0] + 4 * h, 20_001)
    x = EigenFlow(matrix=a).exact((norm * z / np.linalg.norm(z))[None], t)[0]
    ax = x @ a.T
    rho = np.sum(x * ax, axis=1) / np.sum(x * x, axis=1)
    residual = np.linalg.norm(ax - rho[:, None] * x, axis=1) / np.linalg.norm(x, axis=1)
    crossing = t[np.argmax(residual <= tol * scale)]
    assert found.flow_time[0] > 30 * h  # dozens of steps: a wrong step rule would show
    assert abs(found.flow_time[0] - crossing) <= 2 * h, (found.flow_time[0], crossing, h)


def test_an_eigen_flow_holds_its_matrix_read_only():
    # The system is frozen: its matrix cannot be changed under it after construction (rhs, exact and the
    # recorded parameters would disagree).
    flow = EigenFlow(matrix=random_symmetric(3, seed=2))
    with pytest.raises(ValueError, match="read-only"):
        flow.matrix[0, 0, 0] = 5.0


def test_random_symmetric_takes_any_positive_integer_size():
    one = random_symmetric(1, seed=2)
    assert one.shape == (1, 1) and np.isfinite(one).all()
    three = random_symmetric(3, seed=2)
    np.testing.assert_array_equal(three, three.T)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=rf"size must be a positive integer, got {bad}"):
            random_symmetric(bad, seed=2)


@pytest.mark.parametrize("tol, match", [(1.5, r"^tol = 1\.5 is out of range; it must be <= 1$"),
                                        (0.0, r"^tol = 0\.0 is out of range; it must be > 0$")])
def test_convergence_time_refuses_a_tolerance_outside_zero_to_one(tol, match):
    with pytest.raises(ValueError, match=match):
        convergence_time(random_symmetric(3, seed=0), tol=tol)


def test_a_one_by_one_matrix_converges_at_once_and_degenerate_auto_horizons_are_refused():
    # One dimension: the Rayleigh quotient is λ from the start (no second eigenvalue to separate from).
    assert convergence_time(np.array([[0.7]])) == 0.0
    from simulators import EnsembleConfig, generate

    config = EnsembleConfig.from_dict({"system": "eigen", "n_traj": 2, "dt": 0.1, "t_end": "auto", "seed": 1,
                                       "params": {"size": 2, "matrix": [[1.0, 0.0], [0.0, 1.0]]}})
    with pytest.raises(ValueError, match=r'^t_end = "auto" needs a gap between the top two eigenvalues; a matrix '
                                         r"has a degenerate top eigenvalue, so give t_end or n_steps$"):
        generate(config)


@pytest.mark.parametrize("size", [0, -2, 2.0, True])
def test_an_ensembles_size_is_a_positive_integer(size):
    from simulators import EigenParams

    with pytest.raises(ValueError, match=rf"^size must be a positive integer, got {size!r}$"):
        EigenParams(size=size)
