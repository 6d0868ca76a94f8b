"""The `recsys-fast` data and recommend commands: output, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recsys_fast.cli import main


def test_data_info_real_ml100k(ml100k_dir, capsys):
    assert main(["data", "info", "ml-100k", "--path", str(ml100k_dir)]) == 0
    out = capsys.readouterr().out
    assert "users:    943" in out
    assert "1,682 rated" in out
    assert "ratings:  100,000" in out
    assert "27,145" in out  # the count of 3-star ratings in the histogram


def test_data_info_synthetic_json(capsys):
    assert main(["data", "info", "synthetic-100k", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"users": 943' in out and '"ratings": 100000' in out


def test_synth_writes_files_the_real_parser_reads(tmp_path, capsys):
    out_dir = tmp_path / "syn"
    assert main(["data", "synth", "100k", "--out", str(out_dir)]) == 0
    assert (out_dir / "u.data").exists() and (out_dir / "u.item").exists()
    capsys.readouterr()
    assert main(["data", "info", "ml-100k", "--path", str(out_dir)]) == 0
    assert "ratings:  100,000" in capsys.readouterr().out


def test_data_list_names_every_source(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("ml-100k", "ml-latest-small", "ml-25m", "tmdb-5000", "retail-sample", "synthetic-1m"):
        assert name in out


def test_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "info", "ml-100k", "--path", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys-fast: error:") and "nope" in err and "Traceback" not in err


def test_malformed_file_names_file_and_line(tmp_path, capsys):
    assert main(["data", "synth", "100k", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "u.data").read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(lines[1].split("\t")[2], "five", 1)
    (tmp_path / "u.data").write_text("".join(lines))
    capsys.readouterr()
    assert main(["data", "info", "ml-100k", "--path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "u.data" in err and "line 2" in err and "Traceback" not in err


def test_fetch_without_network_names_the_alternatives(tmp_path, capsys):
    # a closed port on loopback: the download fails at once
    rc = main(["data", "fetch", "ml-100k", "--cache", str(tmp_path), "--url", "http://127.0.0.1:9/ml-100k.zip"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--path DIR" in err and "synthetic-100k" in err


def test_recommend_runs_the_naive_recommenders(capsys):
    assert main(["recommend", "--which", "simple,content", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "IMDB weighted rating" in out and "items like " in out
    assert "item ids" not in out and "(19" in out  # titles such as "Town (1994)", not ids


@pytest.mark.slow  # ~30 s: the course's dense CF and the kNN ranker on 100k
def test_recommend_cf_shows_the_course_and_the_knn_lists_with_reasons(capsys):
    assert main(["recommend", "--which", "cf", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "user-based top-3" in out and "(19" in out
    ranked = out.split("item-kNN ranker", 1)[1].splitlines()
    shown = [line for line in ranked if line.startswith("  ") and "you rated" in line]
    assert len(shown) == 3 and all("(score " in line for line in shown)


def test_recommend_unknown_name_lists_valid(capsys):
    assert main(["recommend", "--which", "simple,bogus"]) == 2
    assert "simple, cf, content, dnn" in capsys.readouterr().err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "recsys_fast.cli", "data", "info", "nope-set"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "nope-set" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv", [["data"], ["bogus"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
