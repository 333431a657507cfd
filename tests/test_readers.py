"""Rating-data readers on small generated files: happy paths against hand-computed matrices, gzip,
duplicates, reports, and every error case with its file:line message."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxae.data.readers.common import (DelimitedText, ReadReport, open_bytes, open_text)
from jaxae.data.readers.csv import read_csv
from jaxae.data.readers.lightgcn import read_lightgcn
from jaxae.data.readers.movielens import read_movielens, read_movielens_records
from jaxae.data.readers.tsv import read_tsv_dir
from jaxae.errors import DataError


def write(path, text: str, gz: bool = False):
  data = text.encode("utf-8")
  path.write_bytes(gzip.compress(data) if gz else data)
  return path


def dense(inter):
  return inter.matrix.toarray()


U_DATA = "1\t10\t3\t100\n2\t10\t4\t101\n1\t20\t5\t102\n3\t30\t1\t103\n"
U_DENSE = [[3, 5, 0], [4, 0, 0], [0, 0, 1]]
U_TIMES = [[100, 102, 0], [101, 0, 0], [0, 0, 103]]


# ---------------------------------------------------------------------------- common
def test_open_bytes_detects_gzip_by_magic_not_name(tmp_path):
  p = tmp_path / "plain_name.txt"
  p.write_bytes(gzip.compress(b"hello\n"))
  assert open_bytes(p) == b"hello\n"
  assert open_text(write(tmp_path / "x.txt", "caf\u00e9\n")) == "caf\u00e9\n"


def test_open_errors(tmp_path):
  with pytest.raises(DataError, match="no such file"):
    open_bytes(tmp_path / "missing.txt")
  bad = tmp_path / "bad.gz"
  bad.write_bytes(gzip.compress(b"1 2 3\n" * 100)[:30])
  with pytest.raises(DataError, match="corrupt or truncated gzip"):
    open_bytes(bad)
  latin = tmp_path / "latin.txt"
  latin.write_bytes(b"ok\nok\ncaf\xe9\n")
  with pytest.raises(DataError, match=r"latin.txt:3: not valid utf-8"):
    open_text(latin)
  assert open_text(latin, encoding="latin-1").endswith("caf\u00e9\n")


def test_delimited_text_blank_lines_crlf_and_line_numbers(tmp_path):
  p = write(tmp_path / "t.tsv", "1\t2\t3\r\n\r\n4\t5\t6\r\n  \n7\t8\t9")
  t = DelimitedText(p, "\t", 3)
  np.testing.assert_array_equal(t.numbers(), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
  np.testing.assert_array_equal(t.line_numbers, [1, 3, 5])
  assert t.report.lines == 5 and t.report.skipped == {"blank_lines": 2}
  assert list(t.fields(1)) == ["2", "5", "8"]


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.lists(st.integers(-10**6, 10**6), min_size=3, max_size=3), min_size=1,
                       max_size=20),
       delimiter=st.sampled_from(["\t", ",", "::", ";", None]),
       blank_after=st.sets(st.integers(0, 19)), crlf=st.booleans())
def test_delimited_text_roundtrip(values, delimiter, blank_after, crlf):
  """Numbers written with any delimiter, blank lines and line ending parse back exactly, through
  both the numeric block and the per-field text path."""
  sep = " " if delimiter is None else delimiter
  eol = "\r\n" if crlf else "\n"
  lines = []
  for k, row in enumerate(values):
    lines.append(sep.join(str(v) for v in row))
    if k in blank_after:
      lines.append("")
  t = DelimitedText("x", delimiter, 3, data=eol.join(lines).encode())
  np.testing.assert_array_equal(t.numbers(), values)
  for j in range(3):
    np.testing.assert_array_equal(t.fields(j).astype(np.int64), [r[j] for r in values])
  nonblank = [i + 1 for i, ln in enumerate(lines) if ln]
  np.testing.assert_array_equal(t.line_numbers, nonblank)


def test_read_report_summary_and_combine():
  a = ReadReport("a", lines=3, duplicates_merged=1, skipped={"blank_lines": 1})
  b = ReadReport("b", lines=2, skipped={"blank_lines": 2, "x": 1})
  c = ReadReport.combine("dir", [a, b])
  assert (c.lines, c.duplicates_merged, c.skipped) == (5, 1, {"blank_lines": 3, "x": 1})
  assert "1 duplicates merged" in a.summary()


# ---------------------------------------------------------------------------- movielens
@pytest.mark.parametrize("gz", [False, True])
def test_movielens_u_data(tmp_path, gz):
  p = write(tmp_path / "u.data", U_DATA, gz)
  inter, report = read_movielens(p, return_report=True)
  np.testing.assert_array_equal(inter.row_ids, [1, 2, 3])
  np.testing.assert_array_equal(inter.col_ids, [10, 20, 30])
  np.testing.assert_array_equal(dense(inter), U_DENSE)
  np.testing.assert_array_equal(inter.timestamps.toarray(), U_TIMES)
  assert inter.matrix.dtype == np.float32
  assert (report.lines, report.interactions, report.duplicates_merged) == (4, 4, 0)


@pytest.mark.parametrize("name,gz", [("ratings.dat", False), ("ratings.dat.gz", True),
                                     ("renamed.bin", True)])
def test_movielens_dat_half_stars(tmp_path, name, gz):
  text = "7::1::4.5::978300760\n7::2::0.5::978300761\n9::1::3::978300762\n"
  inter = read_movielens(write(tmp_path / name, text, gz))
  np.testing.assert_array_equal(dense(inter), [[4.5, 0.5], [3, 0]])
  np.testing.assert_array_equal(inter.row_ids, [7, 9])
  np.testing.assert_array_equal(inter.timestamps.toarray(),
                                [[978300760, 978300761], [978300762, 0]])


def test_movielens_csv_with_header_and_duplicates(tmp_path):
  text = ("userId,movieId,rating,timestamp\n1,5,3.5,10\n1,6,4.0,11\n"
          "2,5,1.0,12\n1,5,2.5,13\n")
  inter, report = read_movielens(write(tmp_path / "ratings.csv", text), return_report=True)
  # The repeated pair (1, 5) keeps its last rating 2.5 and last time 13.
  np.testing.assert_array_equal(dense(inter), [[2.5, 4.0], [1.0, 0]])
  np.testing.assert_array_equal(inter.timestamps.toarray(), [[13, 11], [12, 0]])
  assert (report.lines, report.interactions, report.duplicates_merged) == (5, 3, 1)


def test_movielens_records_keep_file_order(tmp_path):
  rec = read_movielens_records(write(tmp_path / "u.data", U_DATA))
  np.testing.assert_array_equal(rec.users, [1, 2, 1, 3])
  np.testing.assert_array_equal(rec.items, [10, 10, 20, 30])
  np.testing.assert_array_equal(rec.ratings, [3, 4, 5, 1])
  np.testing.assert_array_equal(rec.line_numbers, [1, 2, 3, 4])


def test_movielens_bad_header(tmp_path):
  p = write(tmp_path / "ratings.csv", "user,item,score,time\n1,2,3,4\n")
  with pytest.raises(DataError, match=r"ratings.csv:1: expected the header"):
    read_movielens(p)


BAD_U_DATA = [
    ("1\t10\t3\t100\n2\t10\tnan\t101\n", r"u.data:2: rating 'nan' is not a finite number"),
    ("1\t10\t3\t100\n\n2\t10\tinf\t101\n", r"u.data:3: rating 'inf' is not a finite number"),
    ("1\t10\tabc\t100\n", r"u.data:1: rating 'abc' is not a number"),
    ("1\t10\t3\t100\n1\t11\t6\t100\n", r"u.data:2: rating '6' is outside the range \[1, 5\]"),
    ("1\t10\t0\t100\n", r"u.data:1: rating '0' is outside the range \[1, 5\]"),
    ("1\t10\t3\t100\n2\t10\t3\n", r"u.data:2: expected 4 columns separated by '\\t', found 3"),
    ("1\t10\t3\t100\t5\n", r"u.data:1: expected 4 columns separated by '\\t', found 5"),
    ("1.5\t10\t3\t100\n", r"u.data:1: user id '1.5' is not an integer"),
    ("1\tx7\t3\t100\n", r"u.data:1: movie id 'x7' is not a number"),
    ("1\t10\t3\t100\n1\t\t3\t100\n", r"u.data:2: expected 4 numbers .* found 3 non-empty"),
    ("1\t10\t3\t1e9.5\n", r"u.data:1: timestamp '1e9.5' is not a number"),
    ("", r"u.data: empty file"),
    ("\n\n", r"u.data: empty file"),
]


@pytest.mark.parametrize("text,message", BAD_U_DATA)
@pytest.mark.parametrize("gz", [False, True])
def test_movielens_errors(tmp_path, text, message, gz):
  p = write(tmp_path / "u.data", text, gz)
  with pytest.raises(DataError, match=message):
    read_movielens(p, rating_range=(1, 5))


def test_movielens_error_is_one_line_and_names_the_file(tmp_path):
  p = write(tmp_path / "ratings.dat", "1::2::3::4\n1::2::x::4\n")
  with pytest.raises(DataError) as e:
    read_movielens(p)
  assert "\n" not in str(e.value) and str(p) + ":2:" in str(e.value)


# ---------------------------------------------------------------------------- tsv (DeepRecommender)
def test_tsv_dir_concatenates_files_last_wins(tmp_path):
  d = tmp_path / "N3M_TRAIN"
  d.mkdir()
  write(d / "a.txt", "1\t100\t3\n2\t100\t4\n")
  write(d / "b.txt", "1\t200\t5\n1\t100\t1\n", gz=True)
  write(d / "notes.md", "not data\n")
  write(d / ".hidden.txt", "garbage\n")
  inter, report = read_tsv_dir(d, return_report=True)
  # (1, 100) appears in a.txt (3) and later in b.txt (1): the later file wins.
  np.testing.assert_array_equal(dense(inter), [[1, 5], [4, 0]])
  assert inter.timestamps is None
  assert (report.lines, report.interactions, report.duplicates_merged) == (4, 3, 1)
  with pytest.raises(DataError, match=r"notes.md:1: expected 3 or 4 columns"):  # all files read
    read_tsv_dir(d, extension=None)


def test_tsv_single_file_with_unix_and_date_times(tmp_path):
  inter = read_tsv_dir(write(tmp_path / "t.txt", "5\t1\t2\t86400\n6\t1\t3\t0\n"))
  np.testing.assert_array_equal(inter.timestamps.toarray(), [[86400], [0]])
  inter = read_tsv_dir(write(tmp_path / "d.txt", "5\t1\t2\t1970-01-02\n6\t1\t3.5\t2005-09-06\n"))
  np.testing.assert_array_equal(dense(inter), [[2], [3.5]])
  np.testing.assert_array_equal(inter.timestamps.toarray(), [[86400], [1125964800]])


def test_tsv_errors(tmp_path):
  with pytest.raises(DataError, match=r"d.txt:2: timestamp '2005-13-01' is neither"):
    read_tsv_dir(write(tmp_path / "d.txt", "5\t1\t2\t2005-01-01\n6\t1\t3\t2005-13-01\n"))
  with pytest.raises(DataError, match=r"r.txt:1: rating '-1' is outside the range \[1, 5\]"):
    read_tsv_dir(write(tmp_path / "r.txt", "5\t1\t-1\n"), rating_range=(1, 5))
  d = tmp_path / "mixed"
  d.mkdir()
  write(d / "a.txt", "1\t2\t3\n")
  write(d / "b.txt", "1\t2\t3\t4\n")
  with pytest.raises(DataError, match=r"b.txt: has a timestamp column, unlike"):
    read_tsv_dir(d)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match=r"no \*.txt files"):
    read_tsv_dir(tmp_path / "empty")
  with pytest.raises(DataError, match="no such file"):
    read_tsv_dir(tmp_path / "nowhere")


# ---------------------------------------------------------------------------- lightgcn
@pytest.mark.parametrize("gz", [False, True])
def test_lightgcn_dir_shares_vocabularies(tmp_path, gz):
  write(tmp_path / "train.txt", "0 3 1\n2 0 0\n\n1\n", gz)
  write(tmp_path / "test.txt", "0 2\n3 4\n", gz)
  (train, test), (r_train, r_test) = read_lightgcn(tmp_path, return_report=True)
  assert train.shape == test.shape == (4, 5)  # users 0..3, items 0..4 over both files
  np.testing.assert_array_equal(train.row_ids, np.arange(4))
  np.testing.assert_array_equal(test.col_ids, np.arange(5))
  np.testing.assert_array_equal(dense(train), [[0, 1, 0, 1, 0], [0] * 5, [1, 0, 0, 0, 0],
                                               [0] * 5])
  np.testing.assert_array_equal(dense(test), [[0, 0, 1, 0, 0], [0] * 5, [0] * 5,
                                              [0, 0, 0, 0, 1]])
  assert train.matrix.has_sorted_indices
  assert (r_train.lines, r_train.interactions, r_train.duplicates_merged) == (4, 3, 1)
  assert r_train.skipped == {"blank_lines": 1}
  assert (r_test.interactions, r_test.duplicates_merged) == (2, 0)


def test_lightgcn_single_file(tmp_path):
  inter = read_lightgcn(write(tmp_path / "x.txt", "1 2\n0 0 2\n1 1\n"))
  # user 1 has two lines: merged (counted as a repeated user line, not a duplicate pair).
  np.testing.assert_array_equal(dense(inter), [[1, 0, 1], [0, 1, 1]])
  _, report = read_lightgcn(write(tmp_path / "x.txt", "1 2\n0 0 2\n1 1\n"), return_report=True)
  assert report.skipped == {"repeated_user_lines_merged": 1}


@pytest.mark.parametrize("text,message", [
    ("0 1 2\n1 3 x\n", r"train.txt:2: id 'x' is not an integer"),
    ("0 1 2\n\n1 3 2.5\n", r"train.txt:3: id '2.5' is not an integer"),
    ("0 1 2\n1 -3\n", r"train.txt:2: id -3 is negative"),
    ("0 1\n1 99999999999999999999999\n", r"train.txt:2: id 9+ is too large"),
    ("", r"train.txt: empty file"),
])
def test_lightgcn_errors(tmp_path, text, message):
  with pytest.raises(DataError, match=message):
    read_lightgcn(write(tmp_path / "train.txt", text))


def test_lightgcn_dir_needs_both_files(tmp_path):
  write(tmp_path / "train.txt", "0 1\n")
  with pytest.raises(DataError, match="no test.txt"):
    read_lightgcn(tmp_path)


# ---------------------------------------------------------------------------- generic csv
def test_csv_columns_by_name(tmp_path):
  text = "ts,item,user,score\n100,b,u1,2\n101,a,u1,4\n102,a,u2,5\n"
  inter = read_csv(write(tmp_path / "r.csv", text), user_col="user", item_col="ITEM",
                   rating_col="score", timestamp_col="ts", ids="str")
  np.testing.assert_array_equal(inter.row_ids, ["u1", "u2"])
  np.testing.assert_array_equal(inter.col_ids, ["a", "b"])
  np.testing.assert_array_equal(dense(inter), [[4, 2], [5, 0]])
  np.testing.assert_array_equal(inter.timestamps.toarray(), [[101, 100], [102, 0]])


@pytest.mark.parametrize("gz", [False, True])
def test_csv_positions_without_header_implicit(tmp_path, gz):
  p = write(tmp_path / "r.csv", "3, 7, x\n3 ,8,y\n4,7 ,z\n3,7,w\n", gz)
  inter, report = read_csv(p, user_col=0, item_col=1, return_report=True)
  np.testing.assert_array_equal(inter.row_ids, [3, 4])
  np.testing.assert_array_equal(inter.col_ids, [7, 8])
  np.testing.assert_array_equal(dense(inter), [[1, 1], [1, 0]])
  assert (report.interactions, report.duplicates_merged) == (3, 1)


def test_csv_header_auto_detection_and_dates(tmp_path):
  text = "u\ti\tr\twhen\n1\t2\t3\t2020-01-01\n1\t3\t4\t2020-01-02 00:00:01\n"
  inter = read_csv(write(tmp_path / "r.tsv", text), 0, 1, 2, 3, delimiter="\t")
  np.testing.assert_array_equal(dense(inter), [[3, 4]])
  np.testing.assert_array_equal(inter.timestamps.toarray(), [[1577836800, 1577923201]])
  # Without a header line the first record is data.
  inter = read_csv(write(tmp_path / "n.tsv", "1\t2\t3\n"), 0, 1, 2, delimiter="\t")
  assert inter.nnz == 1


def test_csv_whitespace_delimiter(tmp_path):
  inter = read_csv(write(tmp_path / "w.txt", "1   2  5\n\t2 2 1\n"), 0, 1, 2, delimiter=None)
  np.testing.assert_array_equal(dense(inter), [[5], [1]])


@pytest.mark.parametrize("text,kwargs,message", [
    ("a,b,r\n1,2,3\n", dict(user_col="user"), r"r.csv:1: no column 'user' in the header"),
    ("1,2,3\n", dict(user_col=0, item_col=0), "the user and item columns are the same"),
    ("1,2,3\n", dict(user_col=0, item_col=5), "column 5 out of range"),
    ("1,2,3\n1,2.5,3\n", dict(rating_col=2), r"r.csv:2: item id '2.5' is not an integer"),
    ("u,i,r\n1,2,3\n1,2,nan\n", dict(rating_col="r"), r"r.csv:3: rating 'nan' is not a finite"),
    ("u,i,r\n1,2,3\n1,2,seven\n", dict(rating_col=2), r"r.csv:3: rating 'seven' is not a number"),
    ("u,i,r\n1,2,3\n1,2,9\n", dict(rating_col=2, rating_range=(1, 5)), r"r.csv:3: rating '9' is "
     r"outside the range \[1, 5\]"),
    ("1,2,3\n1,2\n", dict(), r"r.csv:2: expected 3 columns separated by ',', found 2"),
    ("u,i\n", dict(user_col="u", item_col="i"), r"r.csv: empty file \(only a header"),
    ("", dict(), r"r.csv: empty file"),
    ("1,2\n", dict(ids="uuid"), "ids must be 'int' or 'str'"),
    ("a,b\n,c\n", dict(ids="str"), r"r.csv:2: empty user id"),
])
def test_csv_errors(tmp_path, text, kwargs, message):
  with pytest.raises(DataError, match=message):
    read_csv(write(tmp_path / "r.csv", text), **kwargs)


def test_readers_log_their_report(tmp_path, caplog):
  p = write(tmp_path / "u.data", U_DATA + U_DATA.splitlines()[0] + "\n")
  with caplog.at_level(logging.INFO):
    read_movielens(p)
  assert any("5 lines, 4 interactions, 1 duplicates merged" in r.getMessage()
             for r in caplog.records)
