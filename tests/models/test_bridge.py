import numpy as np
import pytest

from coldbrew.config import BridgeConfig
from coldbrew.errors import NotFittedError
from coldbrew.models.bridge import TextToCFBridge


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
