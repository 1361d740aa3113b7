"""Config files: TOML and JSON, strict keys and types, event weights merged with defaults."""

from __future__ import annotations

import json

import pytest

from coldbrew.config import (
    DEFAULT_EVENT_WEIGHTS,
    ALSConfig,
    ColumnsConfig,
    DataConfig,
    EncoderConfig,
    FitConfig,
    WeightingConfig,
    load_config,
)
from coldbrew.errors import ConfigError

FULL_TOML = """
[retrieval]
index = "exact"

[columns]
item_id = "sku"
user_id = "customer"

[data]
on_bad_rows = "skip"

[weighting]
half_life_days = 30
rating_max = 10
event_weights = { view = 0.5, share = 2, PURCHASE = 8 }

[encoder]
name = "hashing"
threads = 2
lowercase = false

[als]
factors = 32
regularization = 1

[bridge]
neighbors = 5

[blend]
tune = false
warmth_half = 2.5
"""


def _check_full(config: FitConfig) -> None:
    assert config.retrieval.index == "exact"
    assert config.columns == ColumnsConfig(item_id="sku", user_id="customer")
    assert config.data.on_bad_rows == "skip"
    assert config.weighting.half_life_days == 30.0
    assert isinstance(config.weighting.half_life_days, float)
    assert config.weighting.rating_max == 10.0
    assert config.encoder == EncoderConfig(name="hashing", threads=2, lowercase=False)
    assert config.encoder.resolved_threads() == 2
    assert config.als == ALSConfig(factors=32, regularization=1.0)
    assert isinstance(config.als.regularization, float)
    assert config.bridge.neighbors == 5
    assert config.blend.tune is False
    assert config.blend.warmth_half == 2.5
    weights = dict(config.weighting.event_weights)
    assert weights["view"] == 0.5
    assert weights["share"] == 2.0
    assert weights["purchase"] == 8.0  # keys are lower-cased
    assert weights["cart"] == 3.0  # defaults not mentioned are kept


def test_defaults_without_a_file():
    config = load_config(None)
    assert config == FitConfig()
    assert config.data.on_bad_rows == "error"
    assert config.weighting.event_weights == DEFAULT_EVENT_WEIGHTS


def test_toml(tmp_path):
    path = tmp_path / "coldbrew.toml"
    path.write_text(FULL_TOML, encoding="utf-8")
    _check_full(load_config(path))


def test_json(tmp_path):
    raw = {
        "retrieval": {"index": "exact"},
        "columns": {"item_id": "sku", "user_id": "customer"},
        "data": {"on_bad_rows": "skip"},
        "weighting": {"half_life_days": 30, "rating_max": 10,
                      "event_weights": {"view": 0.5, "share": 2, "PURCHASE": 8}},
        "encoder": {"name": "hashing", "threads": 2, "lowercase": False},
        "als": {"factors": 32, "regularization": 1},
        "bridge": {"neighbors": 5},
        "blend": {"tune": False, "warmth_half": 2.5},
    }
    path = tmp_path / "coldbrew.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    _check_full(load_config(path))


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == FitConfig()


def test_partial_section_keeps_other_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[als]\nfactors = 8\n", encoding="utf-8")
    config = load_config(path)
    assert config.als.factors == 8
    assert config.als.iterations == ALSConfig().iterations
    assert config.weighting == WeightingConfig()


def test_event_weights_merge_with_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[weighting.event_weights]\nview = 0\nlike = 5\n", encoding="utf-8")
    weighting = load_config(path).weighting
    merged = dict(weighting.event_weights)
    assert set(merged) == set(dict(DEFAULT_EVENT_WEIGHTS))
    assert merged["view"] == 0.0
    assert merged["like"] == 5.0
    assert merged["purchase"] == 4.0
    assert weighting.weight_of("VIEW") == 0.0
    assert weighting.weight_of("never-seen") == weighting.default_weight


# --- errors --------------------------------------------------------------------------------


def _write(tmp_path, text: str, name: str = "c.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("name", "text"), [("bad.toml", "[als\nfactors = 1\n"), ("bad.json", '{"als": {"factors": 1}')]
)
def test_unparseable_file(tmp_path, name, text):
    path = _write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"config file {path}: cannot parse")


def test_unknown_section_is_named(tmp_path):
    path = _write(tmp_path, "[modle]\nfactors = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "unknown key(s) modle" in msg
    assert "als" in msg and "weighting" in msg  # lists what is allowed


def test_unknown_key_is_named_with_its_section(tmp_path):
    path = _write(tmp_path, "[als]\nfactor = 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert ".als: unknown key(s) factor" in msg
    assert "factors" in msg


def test_unknown_key_in_json(tmp_path):
    path = _write(tmp_path, json.dumps({"weighting": {"half_life": 3}}), "c.json")
    with pytest.raises(ConfigError, match=r"weighting: unknown key\(s\) half_life"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("als", "factors", '"64"'),
        ("als", "factors", "64.5"),
        ("als", "iterations", "true"),
        ("als", "regularization", '"high"'),
        ("blend", "tune", "1"),
        ("weighting", "half_life_days", '"30"'),
        ("columns", "item_id", "true"),
        ("encoder", "name", "3.5"),
        ("encoder", "threads", '"four"'),
        ("encoder", "threads", "2.5"),
        ("blend", "shelf_cf", '"high"'),
    ],
)
def test_wrong_type_names_section_and_key(tmp_path, section, key, value):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, f"[{section}]\n{key} = {value}\n"))
    assert f".{section}.{key}:" in str(info.value)
    assert value.strip('"').lower() in str(info.value).lower()  # shows the offending value


def test_null_for_a_required_number_is_a_type_error(tmp_path):
    path = _write(tmp_path, json.dumps({"als": {"factors": None}}), "c.json")
    with pytest.raises(ConfigError, match=r"als\.factors"):
        load_config(path)


def test_null_is_allowed_where_the_default_is_none(tmp_path):
    path = _write(tmp_path, json.dumps({"weighting": {"half_life_days": None},
                                        "encoder": {"threads": None},
                                        "blend": {"shelf_content": None, "shelf_cf": 2}}), "c.json")
    config = load_config(path)
    assert config.weighting.half_life_days is None
    assert config.encoder.threads is None
    assert config.blend.shelf_content is None and config.blend.shelf_cf == 2.0


def test_section_that_is_not_a_table(tmp_path):
    with pytest.raises(ConfigError, match=r"\.als: expected a table/object, got int"):
        load_config(_write(tmp_path, "als = 5\n"))


def test_top_level_json_must_be_an_object(tmp_path):
    with pytest.raises(ConfigError, match="expected a table/object, got list"):
        load_config(_write(tmp_path, "[1, 2]", "c.json"))


@pytest.mark.parametrize("weight", ["-1", '"high"'])
def test_bad_event_weight_names_the_event(tmp_path, weight):
    path = _write(tmp_path, f"[weighting.event_weights]\nview = {weight}\n")
    with pytest.raises(ConfigError, match=r"weighting\.event_weights\.view: expected a number >= 0"):
        load_config(path)


def test_event_weights_must_be_a_table(tmp_path):
    path = _write(tmp_path, "[weighting]\nevent_weights = [1, 2]\n")
    with pytest.raises(ConfigError, match=r"weighting\.event_weights: expected a table"):
        load_config(path)


def test_bad_row_policy_is_checked(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, '[data]\non_bad_rows = "ignore"\n'))
    assert "data.on_bad_rows" in str(info.value) and "'ignore'" in str(info.value)


def test_data_config_rejects_unknown_policy_directly():
    with pytest.raises(ConfigError):
        DataConfig(on_bad_rows="skp")


# --- the dataclasses -----------------------------------------------------------------------


def test_columns_explicit_lists_only_set_fields():
    assert ColumnsConfig().explicit() == {}
    assert ColumnsConfig(title="name", value="stars").explicit() == {"title": "name", "value": "stars"}


def test_configs_are_frozen():
    config = FitConfig()
    with pytest.raises(AttributeError):
        config.retrieval = None  # type: ignore[misc]


def test_resolved_threads_defaults_to_cores():
    assert EncoderConfig().resolved_threads() >= 1
    assert EncoderConfig(threads=3).resolved_threads() == 3


def test_to_dict_round_trips_through_json(tmp_path):
    # A model directory stores config.to_dict() as JSON and rebuilds it with from_dict.
    config = load_config(_write(tmp_path, FULL_TOML))
    stored = json.loads(json.dumps(config.to_dict()))
    assert FitConfig.from_dict(stored) == config


def test_default_to_dict_round_trips():
    stored = json.loads(json.dumps(FitConfig().to_dict()))
    assert FitConfig.from_dict(stored) == FitConfig()


def test_exact_event_weight_table_round_trips():
    # A table built in Python may leave out default events; reloading must not add them back.
    config = FitConfig(weighting=WeightingConfig(event_weights=(("view", 0.5), ("buy", 2.0))))
    stored = json.loads(json.dumps(config.to_dict()))
    assert FitConfig.from_dict(stored) == config


def test_compute_section_is_checked_and_resolves_auto_counts():
    from coldbrew.config import ComputeConfig, default_threads

    config = FitConfig.from_dict({"compute": {"recommend_threads": 2, "workers": 1}})
    assert config.compute.resolved_recommend_threads() == 2 and config.compute.resolved_workers() == 1
    assert ComputeConfig().resolved_recommend_threads() == min(default_threads(), 4)
    for field in ("workers", "parallel_min_events", "recommend_threads"):
        with pytest.raises(ConfigError, match="compute"):
            FitConfig.from_dict({"compute": {field: -1}})
