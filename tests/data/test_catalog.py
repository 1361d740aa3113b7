"""Catalog loading and validation: formats, column aliases, bad rows, text composition."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldbrew.config import ColumnsConfig
from coldbrew.data import Catalog, catalog_from_frame, load_catalog
from coldbrew.errors import DataError

# Three products, hand-checkable: a leading-zero ID, Chinese text, missing optional fields.
ROWS = [
    {"item_id": "00123", "title": "Trail running shoes", "description": "Light shoes for trails",
     "category": "Sports > Shoes", "brand": "Acme", "price": 59.9, "tags": "running", "color": "red"},
    {"item_id": "A2", "title": "女式运动鞋", "description": "轻便透气",
     "category": "运动 > 鞋", "brand": "李宁", "price": 299.0, "tags": "跑步", "color": "黑色"},
    {"item_id": "B3", "title": "Yoga mat", "description": "",
     "category": "Sports > Yoga", "brand": "", "price": 19.5, "tags": "", "color": "blue"},
]
HEADER = ["item_id", "title", "description", "category", "brand", "price", "tags", "color"]


def _csv_text(rows: list[dict[str, object]]) -> str:
    lines = [",".join(HEADER)]
    lines += [",".join(str(r[c]) for c in HEADER) for r in rows]
    return "\n".join(lines) + "\n"


def _jsonl_text(rows: list[dict[str, object]], ensure_ascii: bool = False) -> str:
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows)


def _write_catalog(fmt: str, write_file, tmp_path):
    if fmt == "csv":
        return write_file("catalog.csv", _csv_text(ROWS))
    if fmt == "csv.gz":
        return write_file("catalog.csv.gz", _csv_text(ROWS))
    if fmt == "jsonl":
        return write_file("catalog.jsonl", _jsonl_text(ROWS))
    if fmt == "jsonl.gz":
        return write_file("catalog.jsonl.gz", _jsonl_text(ROWS, ensure_ascii=True))
    if fmt == "parquet":
        path = tmp_path / "catalog.parquet"
        pd.DataFrame(ROWS).to_parquet(path)
        return path
    raise AssertionError(fmt)


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "jsonl", "jsonl.gz"])
def test_every_format_loads_the_same_catalog(fmt, write_file, tmp_path):
    catalog, report = load_catalog(_write_catalog(fmt, write_file, tmp_path))

    assert isinstance(catalog, Catalog)
    assert len(catalog) == 3
    assert list(catalog.item_ids) == ["00123", "A2", "B3"]
    assert list(catalog.titles) == ["Trail running shoes", "女式运动鞋", "Yoga mat"]
    assert list(catalog.descriptions) == ["Light shoes for trails", "轻便透气", ""]
    assert list(catalog.categories) == ["Sports > Shoes", "运动 > 鞋", "Sports > Yoga"]
    assert list(catalog.brands) == ["Acme", "李宁", ""]
    assert list(catalog.tags) == ["running", "跑步", ""]
    assert catalog.prices.dtype == np.float64
    np.testing.assert_allclose(catalog.prices, [59.9, 299.0, 19.5])
    assert list(catalog.attributes.columns) == ["color"]
    assert list(catalog.attributes["color"]) == ["red", "黑色", "blue"]
    assert (report.rows_read, report.rows_kept, report.skipped) == (3, 3, {})


def test_report_summary_counts_rows(write_file):
    _, report = load_catalog(write_file("catalog.csv", _csv_text(ROWS)))
    assert report.summary().endswith("kept 3 of 3 rows")
    assert report.source.endswith("catalog.csv")


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_chinese_text_round_trips_through_jsonl(write_file, ensure_ascii):
    rows = [{"item_id": "1", "title": "保湿面霜 moisturising cream", "category": "美妆 > 护肤"}]
    catalog, _ = load_catalog(write_file("c.jsonl", _jsonl_text(rows, ensure_ascii)))
    assert catalog.titles[0] == "保湿面霜 moisturising cream"
    assert catalog.texts() == ["保湿面霜 moisturising cream. 美妆 > 护肤"]


def test_chinese_text_round_trips_through_csv(write_file):
    catalog, _ = load_catalog(write_file("c.csv", "item_id,title\n1,红酒 Bordeaux 2015\n"))
    assert catalog.titles[0] == "红酒 Bordeaux 2015"


def test_leading_zeros_in_ids_are_preserved(write_file):
    path = write_file("c.csv", "item_id,title,price\n00123,a,1\n007,b,2\n0,c,3\n")
    catalog, _ = load_catalog(path)
    assert list(catalog.item_ids) == ["00123", "007", "0"]
    assert all(isinstance(v, str) for v in catalog.item_ids)


def test_numeric_ids_in_jsonl_become_strings(write_file):
    path = write_file("c.jsonl", '{"item_id": 123, "title": "a"}\n{"item_id": 7, "title": "b"}\n')
    catalog, _ = load_catalog(path)
    assert list(catalog.item_ids) == ["123", "7"]


def test_tab_separated_file(write_file):
    catalog, _ = load_catalog(write_file("c.tsv", "item_id\ttitle\n1\ta, with comma\n"))
    assert catalog.titles[0] == "a, with comma"


def test_quoted_csv_fields_keep_commas(write_file):
    catalog, _ = load_catalog(write_file("c.csv", 'item_id,title\n1,"Shoes, red"\n'))
    assert catalog.titles[0] == "Shoes, red"


def test_header_only_file_gives_an_empty_catalog(write_file):
    catalog, report = load_catalog(write_file("c.csv", "item_id,title,price\n"))
    assert len(catalog) == 0
    assert catalog.texts() == []
    assert (report.rows_read, report.rows_kept) == (0, 0)


# --- columns: aliases and explicit mapping --------------------------------------------------


def test_column_aliases(write_file):
    path = write_file(
        "c.csv",
        "product_id,name,genres,unit_price,manufacturer,keywords,desc\n"
        "p1,Red wine,Drinks > Wine,12.5,Chateau X,bordeaux,A dry red\n",
    )
    catalog, _ = load_catalog(path)
    assert catalog.item_ids[0] == "p1"
    assert catalog.titles[0] == "Red wine"
    assert catalog.categories[0] == "Drinks > Wine"
    assert catalog.prices[0] == 12.5
    assert catalog.brands[0] == "Chateau X"
    assert catalog.tags[0] == "bordeaux"
    assert catalog.descriptions[0] == "A dry red"
    assert catalog.attributes.shape == (1, 0)


def test_column_aliases_ignore_case_and_surrounding_spaces(write_file):
    catalog, _ = load_catalog(write_file("c.csv", "Product_ID, Name ,SKU\np1,Mug,s-1\n"))
    assert catalog.item_ids[0] == "p1"
    assert catalog.titles[0] == "Mug"
    # A second item-id alias is not used twice: it stays an attribute.
    assert list(catalog.attributes.columns) == ["SKU"]
    assert catalog.attributes["SKU"][0] == "s-1"


def test_canonical_name_wins_over_generic_id_alias(write_file):
    catalog, _ = load_catalog(write_file("c.csv", "id,item_id,title\nrow-1,sku-9,Mug\n"))
    assert catalog.item_ids[0] == "sku-9"
    assert list(catalog.attributes["id"]) == ["row-1"]


def test_explicit_mapping_wins_over_aliases(write_file):
    path = write_file("c.csv", "id,code,label,title\n1,X-9,Kettle,ignored\n")
    columns = ColumnsConfig(item_id="code", title="label")
    catalog, _ = load_catalog(path, columns=columns)
    assert catalog.item_ids[0] == "X-9"
    assert catalog.titles[0] == "Kettle"
    assert sorted(catalog.attributes.columns) == ["id", "title"]


def test_explicit_mapping_is_case_insensitive(write_file):
    path = write_file("c.csv", "Code,Label\nX-9,Kettle\n")
    catalog, _ = load_catalog(path, columns=ColumnsConfig(item_id="code", title="label"))
    assert (catalog.item_ids[0], catalog.titles[0]) == ("X-9", "Kettle")


def test_explicit_mapping_to_missing_column_names_it(write_file):
    path = write_file("c.csv", "item_id,title\n1,a\n")
    with pytest.raises(DataError) as info:
        load_catalog(path, columns=ColumnsConfig(title="product_label"))
    msg = str(info.value)
    assert str(path) in msg
    assert "'product_label'" in msg and "title" in msg
    assert "item_id, title" in msg


def test_missing_item_id_column_lists_the_file_columns(write_file):
    path = write_file("c.csv", "title,price,colour\na,1,red\n")
    with pytest.raises(DataError) as info:
        load_catalog(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "item_id" in msg
    assert "title, price, colour" in msg


def test_no_text_columns_is_an_error(write_file):
    path = write_file("c.csv", "item_id,price,brand\n1,2,Acme\n")
    with pytest.raises(DataError, match="no product text") as info:
        load_catalog(path)
    assert str(path) in str(info.value)
    assert "item_id, price, brand" in str(info.value)


def test_description_alone_is_enough_text(write_file):
    catalog, _ = load_catalog(write_file("c.csv", "item_id,description\n1,Soft cotton tee\n"))
    assert catalog.titles[0] == ""
    assert catalog.texts() == ["Soft cotton tee"]


def test_extra_columns_are_kept_as_attributes(write_file):
    path = write_file("c.csv", "item_id,title,stock,color,size\n1,a,5,red,M\n2,b,0,,L\n")
    catalog, _ = load_catalog(path)
    attrs = catalog.attributes
    assert list(attrs.columns) == ["stock", "color", "size"]
    assert list(attrs["stock"]) == ["5", "0"]  # kept as text, converted by whoever uses them
    assert list(attrs["size"]) == ["M", "L"]
    assert pd.isna(attrs["color"][1])
    frame = catalog.to_frame()
    assert list(frame.columns[7:]) == ["stock", "color", "size"]
    assert list(frame["stock"]) == ["5", "0"]


def test_to_frame_puts_canonical_columns_first(write_file):
    catalog, _ = load_catalog(write_file("c.csv", "item_id,title,color\n1,a,red\n"))
    frame = catalog.to_frame()
    assert list(frame.columns) == [
        "item_id", "title", "description", "category", "brand", "tags", "price", "color"
    ]
    assert frame.loc[0, "color"] == "red"


def test_whitespace_is_stripped_from_ids_and_text(write_file):
    catalog, _ = load_catalog(write_file("c.csv", 'item_id,title\n" 42 ","  Mug  "\n'))
    assert (catalog.item_ids[0], catalog.titles[0]) == ("42", "Mug")


def test_list_tags_in_jsonl_are_joined(write_file):
    path = write_file("c.jsonl", '{"item_id": "1", "title": "Tee", "tags": ["cotton", "summer"]}\n')
    catalog, _ = load_catalog(path)
    assert catalog.tags[0] == "cotton | summer"


# --- bad rows ------------------------------------------------------------------------------


def test_duplicate_id_error_names_both_lines(write_file):
    path = write_file("c.csv", "item_id,title\nA,first\nB,other\nA,second\n")
    with pytest.raises(DataError) as info:
        load_catalog(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 4:")
    assert "duplicate item_id 'A'" in msg
    assert "first at line 2" in msg


def test_duplicate_ids_after_stripping_are_duplicates(write_file):
    with pytest.raises(DataError, match="duplicate item_id '7'"):
        load_catalog(write_file("c.csv", 'item_id,title\n7,a\n" 7",b\n'))


def test_duplicate_id_skip_drops_the_later_row_and_counts_it(write_file):
    path = write_file("c.csv", "item_id,title\nA,first\nB,other\nA,second\nA,third\n")
    catalog, report = load_catalog(path, on_bad_rows="skip")
    assert list(catalog.item_ids) == ["A", "B"]
    assert list(catalog.titles) == ["first", "other"]
    assert report.rows_read == 4
    assert report.rows_kept == 2
    assert report.skipped == {"duplicate item_id": 2}
    assert report.examples == ["line 4: duplicate item_id", "line 5: duplicate item_id"]
    assert "2 duplicate item_id" in report.summary()


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_item_id_is_an_error_naming_line_and_field(write_file, blank):
    path = write_file("c.csv", f"item_id,title\n1,a\n{blank},b\n")
    with pytest.raises(DataError) as info:
        load_catalog(path)
    assert str(info.value) == f"{path}: line 3: field item_id is empty"


def test_empty_item_id_skip_counts_it(write_file):
    path = write_file("c.csv", "item_id,title\n,a\n2,b\n,c\n")
    catalog, report = load_catalog(path, on_bad_rows="skip")
    assert list(catalog.item_ids) == ["2"]
    assert list(catalog.titles) == ["b"]
    assert report.skipped == {"field item_id is empty": 2}
    assert report.examples[0] == "line 2: field item_id is empty"


def test_bad_price_error_names_line_and_field(write_file):
    path = write_file("c.csv", "item_id,title,price\n1,a,9.99\n2,b,cheap\n")
    with pytest.raises(DataError) as info:
        load_catalog(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 3: field price")
    assert "'cheap'" in msg


def test_negative_price_is_bad(write_file):
    with pytest.raises(DataError, match=r"line 2: field price.*'-1'"):
        load_catalog(write_file("c.csv", "item_id,title,price\n1,a,-1\n"))


def test_infinite_price_is_bad(write_file):
    # A price must be a finite, non-negative number; "inf" would poison price features.
    with pytest.raises(DataError, match=r"line 2: field price"):
        load_catalog(write_file("c.csv", "item_id,title,price\n1,a,inf\n"))


def test_bad_price_skip_keeps_the_row_with_unknown_price(write_file):
    path = write_file("c.csv", "item_id,title,price\n1,a,9.99\n2,b,cheap\n3,c,-5\n4,d,\n")
    catalog, report = load_catalog(path, on_bad_rows="skip")
    assert list(catalog.item_ids) == ["1", "2", "3", "4"]
    np.testing.assert_array_equal(catalog.prices, [9.99, np.nan, np.nan, np.nan])
    assert report.rows_kept == 4
    # An empty price is simply unknown, not a bad row.
    assert report.skipped == {"bad price (set to unknown)": 2}
    assert report.examples == [
        "line 3: bad price (set to unknown)", "line 4: bad price (set to unknown)"
    ]


def test_empty_price_is_unknown_without_error(write_file):
    catalog, report = load_catalog(write_file("c.csv", "item_id,title,price\n1,a,\n2,b,3\n"))
    assert np.isnan(catalog.prices[0]) and catalog.prices[1] == 3.0
    assert report.skipped == {}


def test_products_without_text_are_kept(write_file):
    catalog, report = load_catalog(write_file("c.csv", "item_id,title\n1,\n2,Mug\n"))
    assert list(catalog.item_ids) == ["1", "2"]
    assert catalog.texts() == ["", "Mug"]
    assert report.skipped == {}


def test_jsonl_missing_optional_field_is_unknown_not_nan(write_file):
    # JSON Lines rows may omit optional fields (or set them to null); that must read as
    # "unknown", exactly like an empty CSV cell, never as the text "nan".
    path = write_file(
        "c.jsonl",
        '{"item_id": "1", "title": "Mug", "brand": "Acme", "price": 3.5}\n'
        '{"item_id": "2", "title": "Cup"}\n'
        '{"item_id": "3", "title": "Pot", "brand": null, "price": null}\n',
    )
    catalog, report = load_catalog(path)
    assert list(catalog.brands) == ["Acme", "", ""]
    np.testing.assert_array_equal(catalog.prices, [3.5, np.nan, np.nan])
    assert catalog.texts() == ["Mug. Acme", "Cup", "Pot"]
    assert report.skipped == {}


def test_jsonl_row_without_item_id_is_an_empty_id(write_file):
    path = write_file("c.jsonl", '{"item_id": "1", "title": "a"}\n{"title": "b"}\n')
    with pytest.raises(DataError, match="line 2: field item_id is empty"):
        load_catalog(path)


def test_jsonl_errors_name_the_file_line(write_file):
    path = write_file("c.jsonl", '{"item_id": "1", "title": "a"}\n\n{"item_id": "1", "title": "b"}\n')
    with pytest.raises(DataError) as info:
        load_catalog(path)
    assert "line 3" in str(info.value) and "first at line 1" in str(info.value)


def test_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"item_id": ["a", "b", None], "title": ["x", "y", "z"]}).to_parquet(path)
    with pytest.raises(DataError) as info:
        load_catalog(path)
    assert str(info.value) == f"{path}: row 3: field item_id is empty"


def test_parquet_list_tags_are_joined_like_jsonl(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"item_id": ["1"], "title": ["Tee"], "tags": [["cotton", "summer"]]}).to_parquet(path)
    catalog, _ = load_catalog(path)
    assert catalog.tags[0] == "cotton | summer"


# --- catalog_from_frame --------------------------------------------------------------------


def test_catalog_from_frame_locations_are_rows():
    frame = pd.DataFrame({"item_id": ["a", ""], "title": ["x", "y"]})
    with pytest.raises(DataError) as info:
        catalog_from_frame(frame)
    assert str(info.value) == "catalog: row 2: field item_id is empty"


def test_catalog_from_frame_uses_source_and_mapping():
    frame = pd.DataFrame({"code": ["a", "b"], "label": ["x", "y"], "price": ["1", "oops"]})
    catalog, report = catalog_from_frame(
        frame, source="shop", columns=ColumnsConfig(item_id="code", title="label"), on_bad_rows="skip"
    )
    assert list(catalog.item_ids) == ["a", "b"]
    assert list(catalog.titles) == ["x", "y"]
    np.testing.assert_array_equal(catalog.prices, [1.0, np.nan])
    assert report.source == "shop"
    assert report.examples == ["row 2: bad price (set to unknown)"]


def test_catalog_from_frame_error_uses_source():
    with pytest.raises(DataError, match=r"^shop: row 2: field price"):
        catalog_from_frame(
            pd.DataFrame({"item_id": ["a", "b"], "title": ["x", "y"], "price": [1.0, -2.0]}),
            source="shop",
        )


# --- texts and subset ----------------------------------------------------------------------


def _catalog(**columns: list[str]) -> Catalog:
    catalog, _ = catalog_from_frame(pd.DataFrame(columns))
    return catalog


def test_texts_order_is_title_brand_category_tags_description():
    catalog = _catalog(
        item_id=["1"], description=["D"], tags=["T"], category=["C"], brand=["B"], title=["A"]
    )
    assert catalog.texts() == ["A. B. C. T. D"]


def test_texts_skip_empty_and_repeated_parts():
    catalog = _catalog(
        item_id=["1", "2", "3"],
        title=["Acme", "", "Mug"],
        brand=["Acme", "", ""],
        category=["Kitchen", "Kitchen", ""],
        description=["Kitchen", "", " "],
    )
    assert catalog.texts() == ["Acme. Kitchen", "Kitchen", "Mug"]


def test_texts_are_capped_at_1000_characters():
    catalog = _catalog(item_id=["1"], title=["t" * 600], description=["d" * 600])
    (text,) = catalog.texts()
    assert len(text) == 1000
    assert text.startswith("t" * 600 + ". d")


def test_subset_reorders_every_column():
    catalog = _catalog(
        item_id=["a", "b", "c"], title=["A", "B", "C"], price=["1", "2", "3"], color=["r", "g", "b"]
    )
    sub = catalog.subset(np.array([2, 0]))
    assert len(sub) == 2
    assert list(sub.item_ids) == ["c", "a"]
    assert list(sub.titles) == ["C", "A"]
    np.testing.assert_array_equal(sub.prices, [3.0, 1.0])
    assert list(sub.attributes.index) == [0, 1]
    assert list(sub.attributes["color"]) == ["b", "r"]
    assert sub.texts() == ["C", "A"]
    # The original is untouched.
    assert list(catalog.item_ids) == ["a", "b", "c"]


def test_subset_with_no_positions_is_empty():
    catalog = _catalog(item_id=["a"], title=["A"])
    sub = catalog.subset(np.array([], dtype=np.int64))
    assert len(sub) == 0 and sub.texts() == [] and len(sub.attributes) == 0


def test_unknown_bad_row_policy_is_refused(write_file):
    # A typo such as "raise" must not silently drop rows as if it were "skip".
    path = write_file("c.csv", "item_id,title\n,a\n")
    with pytest.raises(ValueError, match="on_bad_rows"):
        load_catalog(path, on_bad_rows="raise")
