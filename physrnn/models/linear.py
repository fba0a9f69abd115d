"""The least-squares affine flow map on a window of inputs: exact for a linear system, the honest bar."""

from __future__ import annotations

import keras
import numpy as np

from ..data import Scaler
from .base import StepModel
from .configs import LinearConfig
from .rollout import window_jacobian, windowed_rollout

__all__ = ["LinearFlowMap", "NetworkModel", "ridge_readout"]


class NetworkModel(StepModel):
    """A model whose fitted state is a Keras network (saved inside the .keras file)."""

    network_: keras.Model

    def _network(self):
        return self.network_

    def _restore(self, network):
        self.network_ = network


class LinearFlowMap(NetworkModel):
    """g = A·vec(u_{i−W+1..i}) + b by least squares (float64), rolled out in the same compiled loop."""

    kind = "linear"
    config_class = LinearConfig

    def _fit(self, train, validation, **options):
        w = self.config.window
        x, y = train.windows(w)
        x = x.reshape(len(x), -1)
        y = y[:, 0]
        # Standardised features for conditioning, then mapped back to the raw inputs.
        scaler = Scaler.fit(x)
        coef, intercept = ridge_readout(scaler.transform(x), y, self.config.ridge)
        kernel = coef / scaler.scale[:, None]
        intercept = intercept - scaler.mean @ kernel
        net = keras.Sequential([keras.Input((w, x.shape[1] // w), dtype="float64"),
                                keras.layers.Flatten(dtype="float64"),
                                keras.layers.Dense(y.shape[1], dtype="float64", name="flow_map")])
        net.get_layer("flow_map").set_weights([kernel, intercept])
        self.network_ = net
        self.history_ = {"train_mse": [float(np.mean((x @ kernel + intercept - y) ** 2))]}

    def _rollout(self, data, context, n_steps, bound):
        return windowed_rollout(self.network_, data, self.config.window, context, n_steps, self.dt_, bound,
                                 "float64")

    def _step_jacobian(self, data, steps):
        return window_jacobian(self.network_, data, self.config.window, steps, self.dt_, "float64")


def ridge_readout(features: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Readout ``targets ≈ features · W + b`` minimising ``‖·‖² + ridge ‖W‖²`` (the intercept unpenalised).

    Solved on centred features as the least-squares problem ``[X; √ridge I] W ≈ [T; 0]`` by a QR
    factorisation: as stable as an SVD (no squared condition number, unlike the normal equations) and
    several times faster. ``ridge = 0`` takes the minimum-norm solution through an SVD (NumPy's lstsq),
    which also copes with rank-deficient features. Returns (W of shape (n_features, n_out), b of shape
    (n_out,)).
    """
    from scipy.linalg import qr, solve_triangular

    mean_f, mean_t = features.mean(axis=0), targets.mean(axis=0)
    fc, tc = features - mean_f, targets - mean_t
    if ridge > 0:
        n = fc.shape[1]
        q, r = qr(np.vstack([fc, np.sqrt(ridge) * np.eye(n)]), mode="economic", check_finite=False)
        kernel = solve_triangular(r, q[: len(fc)].T @ tc, check_finite=False)
    else:
        kernel = np.linalg.lstsq(fc, tc, rcond=None)[0]
    return kernel, mean_t - mean_f @ kernel
