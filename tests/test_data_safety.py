"""`data synth` never overwrites data it did not write; loaders refuse a data set under
another data set's name and label synthetic data as synthetic."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from recsys_fast.cli import main
from recsys_fast.data import load
from recsys_fast.data.catalogue import info
from recsys_fast.data.manifest import SYNTH_MARKER, sha256_file
from recsys_fast.data.movielens import is_synthetic, load_ml100k, load_movielens
from recsys_fast.errors import DatasetMismatchError

ML100K_KEEP = ("u.data", "u.item", "u.user", "u.genre", "u.info", "u.occupation", "README", "ua.base")


@pytest.fixture
def real_copy(ml100k_dir, tmp_path):
    """A writable copy of some of the real ML-100K files."""
    d = tmp_path / "real"
    d.mkdir()
    for f in ML100K_KEEP:
        shutil.copyfile(ml100k_dir / f, d / f)
    return d


def _hashes(folder):
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def test_synth_refuses_a_folder_of_real_data(real_copy, capsys):
    before = _hashes(real_copy)
    assert main(["data", "synth", "100k", "--out", str(real_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "did not write" in err and "u.data" in err and "--force replaces" in err
    assert _hashes(real_copy) == before  # nothing touched
    assert not (real_copy / SYNTH_MARKER).exists()


def test_synth_force_replaces_only_its_own_names_and_marks_the_folder(real_copy, capsys):
    readme = (real_copy / "README").read_bytes()
    assert main(["data", "synth", "100k", "--out", str(real_copy), "--force"]) == 0
    assert (real_copy / "README").read_bytes() == readme  # not a name data synth writes
    manifest = json.loads((real_copy / SYNTH_MARKER).read_text())
    assert "u.data" in manifest["files"] and "README" not in manifest["files"]
    assert is_synthetic(real_copy)
    # the real files still there are not ours: a second run without --force refuses again
    assert main(["data", "synth", "100k", "--out", str(real_copy)]) == 2
    assert "README" in capsys.readouterr().err


def test_synth_rewrites_its_own_output_but_not_a_file_edited_since(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synth", "100k", "--out", str(out)]) == 0
    first = sha256_file(out / "u.data")
    assert main(["data", "synth", "100k", "--out", str(out), "--seed", "1"]) == 0
    assert sha256_file(out / "u.data") != first  # rewritten: it was ours
    assert json.loads((out / SYNTH_MARKER).read_text())["seed"] == 1
    with open(out / "u.item", "a", encoding="latin-1") as f:
        f.write("\n")  # a user's edit: no longer what data synth wrote
    capsys.readouterr()
    assert main(["data", "synth", "100k", "--out", str(out)]) == 2
    assert "u.item" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".synth-")) == []


def test_synth_out_is_a_file_or_unwritable_one_line(tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        assert main(["data", "synth", "100k", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("recsys-fast: error:") and str(f) in err and "Traceback" not in err
    assert f.read_text() == "keep me"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_synth_read_only_folder_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["data", "synth", "100k", "--out", str(ro)]) == 2
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert str(ro) in err and "Traceback" not in err


def test_synth_unwritable_folder_one_line(monkeypatch, tmp_path, capsys):
    from recsys_fast.data import writers

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(writers.tempfile, "mkdtemp", denied)
    assert main(["data", "synth", "100k", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot write into the output folder" in err and "Permission denied" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_turns_oserror_into_one_line(monkeypatch, tmp_path, capsys):
    from recsys_fast.data import writers

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "write_ml100k_format", full_disk)
    assert main(["data", "synth", "100k", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err


def test_synthetic_folder_is_labelled_synthetic(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synth", "100k", "--out", str(out)]) == 0
    assert is_synthetic(out) and is_synthetic(out / "u.data")
    for inter in (load_ml100k(out), load_movielens(out), load("ml-100k", path=out)):
        assert inter.meta["synthetic"] is True and inter.name == "synthetic-100k"
    s = info("ml-100k", path=out)
    assert s["synthetic"] is True and "not the real ml-100k" in s["name"]
    capsys.readouterr()
    assert main(["data", "info", "ml-100k", "--path", str(out)]) == 0
    assert "data set: synthetic-100k" in capsys.readouterr().out


def test_a_synthetic_folder_without_its_marker_is_not_taken_for_the_release(tmp_path, capsys):
    """The synthetic 100k preset has ML-100K's counts: with the marker file gone, the content
    (u.data's SHA-256) still tells it from the release, on every path that loads by name."""
    from recsys_fast.data.manifest import SYNTH_MARKER
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext

    out = tmp_path / "syn"
    assert main(["data", "synth", "100k", "--out", str(out)]) == 0
    (out / SYNTH_MARKER).unlink()
    with pytest.raises(DatasetMismatchError, match="not its release.*without its marker file"):
        load("ml-100k", path=out)
    capsys.readouterr()
    assert main(["data", "info", "ml-100k", "--path", str(out)]) == 2
    assert "has ml-100k's counts but is not its release" in capsys.readouterr().err
    with pytest.raises(DatasetMismatchError, match="not its release"):
        CaseContext(default_registry(), ml100k=out).interactions("100k")


def test_real_ml100k_is_not_synthetic(ml100k_dir):
    assert not is_synthetic(ml100k_dir)
    inter = load("ml-100k", path=ml100k_dir)
    assert inter.meta["synthetic"] is False and inter.name == "ml-100k"


def test_other_data_set_under_a_name_is_refused(ml100k_dir, ml_latest_small_dir, capsys):
    assert main(["data", "info", "ml-latest-small", "--path", str(ml100k_dir)]) == 2
    err = capsys.readouterr().err
    assert "does not hold ml-latest-small" in err and "ratings.csv" in err
    assert "looks like ml-100k" in err and "943" not in err
    with pytest.raises(DatasetMismatchError, match="does not hold ml-100k"):
        load("ml-100k", path=ml_latest_small_dir)


def test_right_files_wrong_counts_are_refused(real_copy):
    lines = (real_copy / "u.data").read_text().splitlines(keepends=True)
    (real_copy / "u.data").write_text("".join(lines[:500]))
    with pytest.raises(DatasetMismatchError) as exc:
        load("ml-100k", path=real_copy)
    assert "500 ratings" in str(exc.value) and "100,000" in str(exc.value)
