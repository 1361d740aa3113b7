import numpy as np
import pytest

from coldbrew.config import BridgeConfig, FitConfig
from coldbrew.errors import ConfigError, NotFittedError
from coldbrew.models.bridge import RIDGE_GRID, TextToCFBridge, choose_ridge


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_linear_bridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(400, 16))).astype(np.float32)
    true_w = rng.normal(size=(16, 3))
    y = x @ true_w + 0.5
    bridge = TextToCFBridge(BridgeConfig(ridge=1e-4, knn_share=0.0)).fit(x, y)
    x_new = _unit(rng.normal(size=(20, 16))).astype(np.float32)
    np.testing.assert_allclose(bridge.predict(x_new), x_new @ true_w + 0.5, atol=1e-2)


def test_knn_bridge_copies_the_target_of_a_near_duplicate():
    x = np.eye(4, dtype=np.float32)
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    bridge = TextToCFBridge(BridgeConfig(knn_share=1.0, neighbors=2)).fit(x, y)
    query = _unit(np.array([[0.0, 0.0, 1.0, 0.05]], dtype=np.float32))
    assert bridge.predict(query)[0, 0] == pytest.approx(3.0, abs=0.01)


def test_empty_text_gets_the_mean_target():
    x = np.eye(3, dtype=np.float32)
    y = np.array([[0.0], [3.0], [6.0]])
    bridge = TextToCFBridge().fit(x, y)
    assert bridge.predict(np.zeros((1, 3), np.float32))[0, 0] == pytest.approx(3.0)


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        TextToCFBridge().predict(np.zeros((1, 3), np.float32))


def _loo_brute_force(x: np.ndarray, y: np.ndarray, lam: float) -> float:
    """Leave each row out, fit a ridge with an unpenalised intercept on the rest, predict it."""
    residuals = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        xm, ym = x[keep].mean(axis=0), y[keep].mean(axis=0)
        xc, yc = x[keep] - xm, y[keep] - ym
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
        residuals.append(y[i] - ((x[i] - xm) @ w + ym))
    r = np.asarray(residuals)
    return float(((r**2).mean(axis=0) / y.var(axis=0)).mean())


def test_choose_ridge_errors_are_exact_leave_one_out():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 2)) + rng.normal(scale=0.5, size=(40, 2)) + 3.0
    _, errors = choose_ridge(x, y, grid=(0.1, 1.0, 10.0))
    for lam, error in errors.items():
        assert error == pytest.approx(_loo_brute_force(x, y, lam), rel=1e-6)


def test_choose_ridge_follows_the_noise():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 20))
    clean = x @ rng.normal(size=(20, 3))
    small, _ = choose_ridge(x, clean)
    large, _ = choose_ridge(x, rng.normal(size=(300, 3)))  # targets unrelated to x
    assert small == min(RIDGE_GRID) and large == max(RIDGE_GRID)


def test_auto_ridge_is_recorded_and_a_fixed_one_is_kept():
    rng = np.random.default_rng(3)
    x = _unit(rng.normal(size=(200, 8))).astype(np.float32)
    y = x @ rng.normal(size=(8, 2))
    auto = TextToCFBridge().fit(x, y)
    assert auto.config.ridge == "auto" and auto.ridge_ in RIDGE_GRID
    assert set(auto.ridge_errors_) == set(RIDGE_GRID)
    assert TextToCFBridge(BridgeConfig(ridge=7)).fit(x, y).ridge_ == 7.0


@pytest.mark.parametrize("bad", [0, -1.0, "big", True])
def test_bridge_ridge_must_be_auto_or_positive(bad):
    with pytest.raises(ConfigError, match="bridge.ridge"):
        FitConfig.from_dict({"bridge": {"ridge": bad}})


def test_bridge_ridge_from_a_config_file_dict():
    assert FitConfig.from_dict({"bridge": {"ridge": 3}}).bridge.ridge == 3.0
    assert FitConfig.from_dict({"bridge": {"ridge": "auto"}}).bridge.ridge == "auto"
    assert FitConfig().bridge.ridge == "auto"


def test_knn_part_through_ivf_above_threshold(monkeypatch):
    import coldbrew.models.augmentation as aug
    import coldbrew.models.bridge as bridge_module
    from coldbrew.config import BridgeConfig
    from coldbrew.models.bridge import TextToCFBridge

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 24)).astype(np.float32)
    x = centres[rng.integers(0, 30, 2000)] + 0.2 * rng.normal(size=(2000, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.normal(size=(2000, 3))
    model = TextToCFBridge(BridgeConfig(ridge=1.0, knn_share=0.5)).fit(x, y)
    exact = model.predict(x[:200])
    monkeypatch.setattr(bridge_module, "ANN_FROM", 500)
    monkeypatch.setattr(aug, "ANN_FROM", 500)
    monkeypatch.setattr(aug, "ANN_MIN_QUERIES", 10)
    approx = model.predict(x[:200])
    assert approx.shape == exact.shape
    assert np.median(np.abs(approx - exact)) < 1e-3
