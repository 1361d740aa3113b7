"""Model directories: round trips, generations, crash safety and refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldbrew.config import BlendConfig, FitConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ModelFormatError
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request
from coldbrew.retrieval.ranked import index_of
from coldbrew.storage import artifacts, load_model, save_items, save_model


@pytest.fixture(scope="module")
def fitted():
    catalog, _ = catalog_from_frame(pd.DataFrame({
        "item_id": ["a", "b", "c", "d"], "title": ["red wine", "white wine", "green tea", "black tea"],
        "category": ["Wine", "Wine", "Tea", "Tea"], "price": [10, 12, 5, None], "colour": ["red", "", "", "x"],
    }))
    rows = [(f"u{u}", item, 1_700_000_000 + 10 * u + j, "purchase")
            for u in range(40) for j, item in enumerate(["a", "b"] if u % 2 else ["c", "d"])]
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    return Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, events, progress=False)


REQUESTS = [Request("1", "u1", (HistoryEvent("a", 1_700_001_000, "purchase"),)), Request("2", "new", text="tea")]


def test_round_trip_gives_identical_recommendations(fitted, tmp_path):
    save_model(fitted, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    before = fitted.recommend(REQUESTS, k=3)
    after = loaded.recommend(REQUESTS, k=3)
    assert [r.items for r in before] == [r.items for r in after]
    np.testing.assert_allclose([r.scores for r in before], [r.scores for r in after], rtol=1e-5)
    assert list(loaded.catalog_.attributes["colour"].fillna("")) == ["red", "", "", "x"]
    assert np.isnan(loaded.catalog_.prices[3])
    # only data files: no pickles anywhere
    for path in (tmp_path / "m").iterdir():
        assert path.suffix in {".json", ".npz", ".parquet"}


def test_add_items_writes_a_new_generation(fitted, tmp_path):
    save_model(fitted, tmp_path / "m")
    model = load_model(tmp_path / "m")
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["e"], "title": ["rose wine"]}))
    assert model.add_items(new) == 1
    save_items(model, tmp_path / "m", model.manifest_)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["generation"] == 1 and manifest["items"] == 5
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "embedding_cache.npz", "item_arrays-1.npz", "items-1.parquet", "manifest.json", "model.npz",
        "training_curves.json", "users.parquet"]
    reloaded = load_model(tmp_path / "m")
    assert "e" in reloaded.item_map_


def test_a_crash_while_adding_items_leaves_the_old_model_intact(fitted, tmp_path, monkeypatch):
    save_model(fitted, tmp_path / "m")
    model = load_model(tmp_path / "m")
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["e"], "title": ["rose wine"]}))
    model.add_items(new)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts, "_save_npz", boom)
    with pytest.raises(OSError):
        save_items(model, tmp_path / "m", model.manifest_)
    monkeypatch.undo()
    survivor = load_model(tmp_path / "m")
    assert len(survivor.item_map_) == 4
    assert survivor.recommend(REQUESTS, k=2)[0].items == fitted.recommend(REQUESTS, k=2)[0].items


@pytest.mark.parametrize("damage", ["no_dir", "no_manifest", "bad_json", "not_ours", "format", "encoder", "missing_file"])
def test_damaged_or_foreign_directories_are_refused_clearly(fitted, tmp_path, damage):
    d = tmp_path / "m"
    if damage != "no_dir":
        save_model(fitted, d)
    manifest_path = d / "manifest.json"
    if damage == "no_manifest":
        manifest_path.unlink()
    elif damage == "bad_json":
        manifest_path.write_text("{")
    elif damage in ("not_ours", "format", "encoder"):
        manifest = json.loads(manifest_path.read_text())
        if damage == "not_ours":
            manifest["format"] = "something-else"
        elif damage == "format":
            manifest["format_version"] = 99
        else:
            manifest["encoder"] = "another-encoder@1"
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "missing_file":
        (d / "model.npz").unlink()
    with pytest.raises(ModelFormatError) as info:
        load_model(d)
    assert str(d) in str(info.value)


def test_refit_into_the_same_directory_encodes_only_changed_texts(fitted, tmp_path):
    from coldbrew.storage import reuse_embedding_cache

    save_model(fitted, tmp_path / "m")
    catalog, _ = catalog_from_frame(pd.DataFrame({
        "item_id": ["a", "b", "c", "d"], "title": ["red wine", "white wine", "green tea", "jasmine tea"],
        "category": ["Wine", "Wine", "Tea", "Tea"],
    }))
    model = Recommender(FitConfig(blend=BlendConfig(tune=False)))
    assert reuse_embedding_cache(model, tmp_path / "m")
    vectors = model.encode(catalog.texts())
    assert model._cache.misses == 1  # only "jasmine tea" is new
    np.testing.assert_allclose(vectors[0], fitted.text_vectors_[0], atol=1e-6)
    (tmp_path / "m" / "embedding_cache.npz").write_bytes(b"garbage")
    assert not reuse_embedding_cache(Recommender(), tmp_path / "m")


# ---------------------------------------------------------------- saved retrieval indexes
@pytest.fixture(scope="module")
def large():
    """A model on the retrieve-then-rank path with faiss IVF indexes (tiny thresholds)."""
    from coldbrew.config import RetrievalConfig

    catalog, _ = catalog_from_frame(pd.DataFrame({
        "item_id": list("abcdefgh"),
        "title": ["red wine", "white wine", "rose wine", "sparkling wine",
                  "green tea", "black tea", "oolong tea", "jasmine tea"],
    }))
    rows = [(f"u{u}", item, 1_700_000_000 + 10 * u + j, "purchase")
            for u in range(40) for j, item in enumerate("abcd" if u % 2 else "efgh") if (u + j) % 3]
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    config = FitConfig(blend=BlendConfig(tune=False),
                       retrieval=RetrievalConfig(dense_limit=0, per_source=3, exact_below=0))
    return Recommender(config).fit(catalog, events, progress=False)


LARGE_REQUESTS = [Request("1", "u1", (HistoryEvent("a", 1_700_001_000, "purchase"),)),
                  Request("2", "new", text="tea"), Request("3", "u2", (HistoryEvent("e", 1_700_001_000, "view"),))]


def _faiss_inner(model, name):
    from coldbrew.retrieval import FaissIndex, NormOrderedIndex

    inner = model._indexes[name].inner
    # CF factors (short): exact norm-ordered numpy search; text vectors: faiss IVF
    assert isinstance(inner, NormOrderedIndex) if name == "cf" else (isinstance(inner, FaissIndex) and inner.kind == "ivf")
    return inner


def test_indexes_are_saved_and_loaded_not_rebuilt(large, tmp_path):
    before = large.recommend(LARGE_REQUESTS, k=3)
    save_model(large, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    # the norm-ordered CF index is the item factors sorted: no file, rebuilt when loading
    assert {name: {k: e[k] for k in ("file", "size", "dim", "kind")} for name, e in manifest["indexes"].items()} == {
        "content": {"file": "index_content-0.faiss", "size": 8, "dim": large.text_vectors_.shape[1], "kind": "ivf"},
    }
    loaded = load_model(tmp_path / "m")
    for name in ("cf", "content"):  # read from the file or rebuilt, before any request
        assert len(_faiss_inner(loaded, name)) == 8
    # 8 text vectors are too few to train 4-bit PQ codes: 8-bit codes (see test_index.py for pq4)
    assert _faiss_inner(loaded, "content").codec == "sq8"
    assert {"cf", "content", "popular"} <= set(loaded._stats)  # catalog statistics saved too
    np.testing.assert_allclose(loaded._moments("content")[1], large._moments("content")[1], atol=1e-12)
    after = loaded.recommend(LARGE_REQUESTS, k=3)
    assert [r.items for r in before] == [r.items for r in after]
    np.testing.assert_allclose([r.scores for r in before], [r.scores for r in after], rtol=1e-5)


def test_added_items_are_appended_to_the_saved_indexes(large, tmp_path):
    save_model(large, tmp_path / "m")
    model = load_model(tmp_path / "m")
    content = _faiss_inner(model, "content")
    raw = content.faiss_index
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["i", "j"], "title": ["matcha green tea", "port wine"]}))
    assert model.add_items(new) == 2
    save_items(model, tmp_path / "m", model.manifest_)
    assert content.faiss_index is raw and len(content) == 10  # appended, not rebuilt
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {e["file"]: e["size"] for e in manifest["indexes"].values()} == {"index_content-1.faiss": 10}
    assert sorted(p.name for p in (tmp_path / "m").glob("index_*")) == ["index_content-1.faiss"]
    assert len(_faiss_inner(model, "cf")) == 10
    reloaded = load_model(tmp_path / "m")
    assert len(_faiss_inner(reloaded, "content")) == 10
    _, ids = index_of(reloaded, "content").search(reloaded.query_vectors(["matcha green tea"]), 1)
    assert ids[0, 0] == reloaded.item_map_.index("i")  # retrievable under its new id
    assert "i" in reloaded.recommend([Request("n", "", text="matcha green tea")], k=10)[0].items


def test_a_directory_without_index_files_builds_them_on_first_use(large, tmp_path):
    save_model(large, tmp_path / "m")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["indexes"]  # as written before indexes were saved
    manifest_path.write_text(json.dumps(manifest))
    for path in (tmp_path / "m").glob("index_*"):
        path.unlink()
    loaded = load_model(tmp_path / "m")
    assert loaded._indexes == {}
    assert [r.items for r in loaded.recommend(LARGE_REQUESTS, k=3)] == [r.items for r in large.recommend(LARGE_REQUESTS, k=3)]
    assert len(_faiss_inner(loaded, "cf")) == 8


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_damaged_index_file_is_refused_clearly(large, tmp_path, damage):
    save_model(large, tmp_path / "m")
    path = tmp_path / "m" / "index_content-0.faiss"
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="index_content-0.faiss"):
        load_model(tmp_path / "m")
