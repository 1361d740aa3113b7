"""read_table: file types, unreadable files, and the line numbers errors report."""

from __future__ import annotations

import pytest

from coldbrew.data import load_catalog, read_table
from coldbrew.errors import DataError


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: file does not exist"


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_unknown_extension_names_the_accepted_ones(write_file):
    path = write_file("catalog.xlsx", "not really excel")
    with pytest.raises(DataError) as info:
        read_table(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: unknown file type")
    assert ".csv" in msg and ".parquet" in msg and ".jsonl" in msg


def test_malformed_csv_is_a_data_error(write_file):
    path = write_file("c.csv", "item_id,title\n1,a\n2,b,extra,fields\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value).startswith(f"{path}: cannot read")


def test_broken_parquet_is_a_data_error(write_file):
    path = write_file("c.parquet", "this is not parquet")
    with pytest.raises(DataError, match="cannot read"):
        read_table(path)


def test_every_column_is_text(write_file):
    frame = read_table(write_file("c.csv", "item_id,price,flag\n00123,1.50,true\n"))
    assert frame.loc[0, "item_id"] == "00123"
    assert frame.loc[0, "price"] == "1.50"
    assert frame.loc[0, "flag"] == "true"


def test_literal_na_strings_are_not_missing(write_file):
    # Only empty cells are missing: "NA" is a valid title (and "None" a valid brand).
    frame = read_table(write_file("c.csv", "item_id,title,brand\nNA,NA,None\n"))
    assert list(frame.iloc[0]) == ["NA", "NA", "None"]


def test_csv_line_numbers_count_blank_lines(write_file):
    # A blank line inside a CSV file must not shift the line numbers errors report.
    path = write_file("c.csv", "item_id,title\n1,a\n\n2,b\n,c\n")
    with pytest.raises(DataError) as info:
        load_catalog(path)
    assert str(info.value) == f"{path}: line 5: field item_id is empty"
