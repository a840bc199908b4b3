"""Archive runs: folders, mirrored trees, skip-existing, stale temporaries, shards, reproducible outputs."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from astroenhance.batch import NOT_READ, Job, discover, parse_shard, shard
from astroenhance.cli import app
from astroenhance.io.writers import cleanup_stale_temporaries, output_is_complete

from .conftest import EXAMPLE, FIXTURES, dead_pid

runner = CliRunner()


def tree(tmp_path):
    root = tmp_path / "archive"
    (root / "night1").mkdir(parents=True)
    (root / "night2" / "deep").mkdir(parents=True)
    shutil.copy(EXAMPLE, root / "night1" / "a_drz.fits.gz")
    shutil.copy(FIXTURES / "reference_drizzlepac_gaussian_drz_sci.fits", root / "night2" / "deep" / "b_drz.fits")
    shutil.copy(FIXTURES / "test_drizzlepac_flt.fits", root / "night2" / "c_flt.fits")
    (root / "night2" / "notes.txt").write_text("not a frame")
    return root


def test_discover_mirrors_tree_and_filters(tmp_path):
    root = tree(tmp_path)
    out = tmp_path / "out"
    jobs = discover([root], out, recursive=True, glob="*_drz.fits*")
    assert [(j.path.name, j.outdir) for j in jobs] == [("a_drz.fits.gz", out / "night1"),
                                                        ("b_drz.fits", out / "night2" / "deep")]
    assert [j.path.name for j in discover([root / "night2"], out)] == ["c_flt.fits"]


def test_a_folders_files_that_are_not_frames_are_listed(tmp_path):
    """A folder's files that are not frames by their names (a BMP, WebP, a text file) were left out without a word:
    "1 done" of a folder of WebP pictures.  Each is listed now, with why; hidden files, a GEIS frame's data file
    (its header names it) and an earlier run's report are not."""
    root = tree(tmp_path)
    night = root / "night2"
    for name in ("a.bmp", "b.webp", ".DS_Store", "astroenhance-report.json", "u2b10101t.c0h", "u2b10101t.c0d"):
        (night / name).write_bytes(b"x")
    skipped: list = []
    jobs = discover([night], tmp_path / "out", skipped=skipped)
    assert [j.path.name for j in jobs] == ["c_flt.fits"]
    why = {p.name: w for p, w in skipped}
    assert sorted(why) == ["a.bmp", "b.webp", "notes.txt", "u2b10101t.c0h"]
    assert why["a.bmp"] == why["notes.txt"] == NOT_READ and "GEIS" in why["u2b10101t.c0h"]
    skipped.clear()  # a --glob leaves out what it does not match without a word
    discover([night], tmp_path / "out", glob="*.fits", skipped=skipped)
    assert skipped == []
    result = runner.invoke(app, ["run", str(night), "-o", str(tmp_path / "o2"), "--dry-run"])
    assert "skip " + str(night / "b.webp") + ": not FITS" in result.output


def test_a_file_given_twice_is_one_job(tmp_path, monkeypatch):
    """``a.fits ./a.fits``, or a file named and inside a folder also given: enhanced once, not overwritten by
    itself (the summary counted it once per spelling)."""
    root = tree(tmp_path)
    monkeypatch.chdir(root / "night2")
    c = root / "night2" / "c_flt.fits"
    jobs = discover([Path("c_flt.fits"), Path("./c_flt.fits"), c, root / "night2"], tmp_path / "out")
    assert len(jobs) == 1 and jobs[0].path == Path("c_flt.fits")


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 60), st.integers(1, 9))
def test_shards_cover_every_file_exactly_once(n_files, n):
    from pathlib import Path

    jobs = [Job(Path(f"/d/f{i:03d}.fits"), Path("/o")) for i in range(n_files)]
    seen = [j.path for k in range(1, n + 1) for j in shard(list(reversed(jobs)), k, n)]
    assert sorted(seen) == sorted(j.path for j in jobs)
    assert parse_shard(f"{n}/{n}") == (n, n)


def test_recursive_run_skip_existing_and_report(tmp_path):
    root = tree(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(root), "-o", str(out), "-r", "--glob", "*_drz.fits*", "--format", "fits", "-q"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    a = out / "night1" / "a_drz.enhanced.fits"
    b = out / "night2" / "deep" / "b_drz.enhanced.fits"
    assert a.exists() and b.exists()
    # a damaged output is redone, a complete one is skipped
    with open(b, "r+b") as fh:
        fh.truncate(5000)
    second = runner.invoke(app, args + ["--skip-existing"])
    assert second.exit_code == 0, second.output
    assert "1 done, 1 skipped, 0 failed" in second.output
    assert output_is_complete(b, (40, 44))


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / f".x.enhanced.fits.astroenhance-tmp-{dead_pid()}-abcd"
    live = tmp_path / f".y.enhanced.fits.astroenhance-tmp-{os.getpid()}-abcd"
    stale.write_bytes(b"half")
    live.write_bytes(b"mine")
    assert cleanup_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_outdir_inside_a_file_is_refused(tmp_path):
    blocker = tmp_path / "f.fits"
    blocker.write_text("x")
    result = runner.invoke(app, ["run", str(EXAMPLE), "-o", str(blocker / "out")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_reruns_are_byte_identical_with_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for name in ("one", "two"):
        assert runner.invoke(app, ["run", str(EXAMPLE), "-o", str(tmp_path / name), "-q"]).exit_code == 0
    for f in ("abell_2744_group_of_galaxies_f105w.enhanced.fits", "abell_2744_group_of_galaxies_f105w.enhanced.png"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


def _copies(tmp_path, n=3):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        shutil.copy(EXAMPLE, src / f"frame{i}.fits.gz")
    return src


def _fits_data(path):
    with fits.open(path) as h:
        return np.stack([h[i].data for i in (1, 2, 3)])


def test_jobs_give_the_same_outputs_as_serial(tmp_path):
    """FITS frames and a picture: the same outputs with --jobs 2 as serially. Workers were given the settings
    resolved for the FITS network, so a picture lost its own network's noise gate (up to 137/255 apart); and
    --skip-existing after a parallel run found every frame "made with other settings"."""
    from PIL import Image

    src = _copies(tmp_path, 2)
    noisy = np.random.default_rng(0).normal(120, 30, (48, 40)).clip(0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(src / "picture.png")
    for name, extra in (("serial", []), ("pool", ["--jobs", "2"])):
        result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / name), "--format", "fits", "-q",
                                     "--fits-encoding", "float32"] + extra)
        assert result.exit_code == 0, result.output
    outputs = ("picture.enhanced.fits", "frame0.enhanced.fits", "frame1.enhanced.fits")
    for f in outputs:
        np.testing.assert_allclose(_fits_data(tmp_path / "pool" / f), _fits_data(tmp_path / "serial" / f), atol=1e-5)
    for f in outputs:
        assert fits.getheader(tmp_path / "pool" / f)["AE_SETSH"] == fits.getheader(tmp_path / "serial" / f)["AE_SETSH"]
    assert fits.getheader(tmp_path / "pool" / "picture.enhanced.fits")["AE_GATE"] is True
    again = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "pool"), "--format", "fits", "-q",
                                "--fits-encoding", "float32", "--skip-existing"])
    assert again.exit_code == 0 and "0 done, 3 skipped" in again.output


def test_disk_full_stops_cleanly(tmp_path, monkeypatch):
    import errno

    src = _copies(tmp_path, 2)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(src), "-o", str(out), "--format", "fits", "-q"])
    assert result.exit_code == 1
    assert "no space left" in result.output and "stopped: the output disk is full" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json"]  # nothing half-written


@pytest.mark.parametrize("fmt, room, needs", [("fits", 3_000_000, "needs 9.0 MB and its disk has 3.0 MB free"),
                                               ("png", 1_500_000, "needs 2.6 MB of scratch space while it is made "
                                                                  "and its disk has 1.5 MB free")])
def test_an_output_too_large_for_the_disk_fails_alone(tmp_path, monkeypatch, fmt, room, needs):
    """A frame whose FITS output the disk has no room for, on a disk that is not full, stopped the whole batch as
    "the output disk is full" (and said "no space left"): the smaller frames after it, which fit, were not started.
    Now that frame fails saying how much it needs and how much is free, and the batch goes on."""
    import errno

    src = tmp_path / "in"
    src.mkdir()
    fits.PrimaryHDU(np.random.default_rng(0).normal(10, 1, (200, 200)).astype(np.float32)).writeto(src / "a.fits")
    shutil.copy(EXAMPLE, src / "b.fits.gz")  # (128x128: its output fits)
    real = os.posix_fallocate

    def fallocate(fd, offset, length):
        if length > room:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - room, room))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(src), "-o", str(out), "--format", fmt])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "1 done, 0 skipped, 1 failed" in said, said
    assert f"a.enhanced.{fmt}: {needs}" in said and "stopped" not in said and "no space left" not in said
    assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json", f"b.enhanced.{fmt}"]


def test_rice_compression_without_room_fails_alone(tmp_path, monkeypatch):
    """rice compresses after the frame, the uncompressed planes and the compressed file on the disk at once; out of
    room there astropy's own words ("Not enough space on disk: requested ...", no errno) were the message. Now it
    says what happened and why rice needs the room; the space comes back, so the batch goes on."""
    from astroenhance.io.writers import FITSRGBWriter

    src = _copies(tmp_path, 2)
    calls = []

    def compress(self):
        calls.append(self.final.name)
        if len(calls) == 1:
            raise OSError("Not enough space on disk: requested 804512, available 0.")
        return compress_(self)

    compress_ = FITSRGBWriter._compress
    monkeypatch.setattr(FITSRGBWriter, "_compress", compress)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(src), "-o", str(out), "--format", "fits", "--fits-encoding", "rice"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "1 done, 0 skipped, 1 failed" in said, said
    assert "frame0.enhanced.fits: no space left on the device while compressing it (rice needs room" in said
    assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json", "frame1.enhanced.fits"]


def test_sigkill_midway_then_rerun_is_byte_identical(tmp_path):
    src = _copies(tmp_path, 4)
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "astroenhance.cli", "run", str(src), "-o"]
    ref = subprocess.run(cmd + [str(tmp_path / "ref"), "--format", "fits", "-q"], env=env, capture_output=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(cmd + [str(out), "--format", "fits", "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.time() + 120
    while time.time() < deadline and not (out / "frame0.enhanced.fits").exists():
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup handlers run
    proc.wait()
    assert not (out / "frame3.enhanced.fits").exists(), "the run finished before it could be killed"
    rerun = subprocess.run(cmd + [str(out), "--format", "fits", "-q", "--skip-existing"], env=env, capture_output=True)
    assert rerun.returncode == 0, rerun.stderr
    for i in range(4):
        f = f"frame{i}.enhanced.fits"
        assert (out / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f
    assert not [p for p in out.iterdir() if "astroenhance-tmp" in p.name]


def test_dask_cluster_gives_the_same_outputs(tmp_path):
    import distributed

    src = _copies(tmp_path, 2)
    result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "local"), "--format", "fits", "-q"])
    assert result.exit_code == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "dask"), "--format", "fits", "-q",
                                     "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    for i in range(2):
        f = f"frame{i}.enhanced.fits"
        np.testing.assert_allclose(_fits_data(tmp_path / "dask" / f), _fits_data(tmp_path / "local" / f), atol=1e-5)


def test_output_inside_input_tree_refused(tmp_path):
    src = _copies(tmp_path, 1)
    result = runner.invoke(app, ["run", str(src), "-o", str(src / "enhanced")])
    assert result.exit_code == 2 and "inside the input folder" in result.output
    assert sorted(p.name for p in src.iterdir()) == ["frame0.fits.gz"]


def test_two_runs_into_one_folder_leave_complete_outputs(tmp_path):
    src = _copies(tmp_path, 3)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "astroenhance.cli", "run", str(src), "-o", str(out), "--format", "fits", "-q"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    for i in range(3):
        assert output_is_complete(out / f"frame{i}.enhanced.fits", (400, 400))
    assert not [p for p in out.iterdir() if "astroenhance-tmp" in p.name]


def test_links_that_loop_or_dangle_are_skipped_and_the_rest_processed(tmp_path):
    import os

    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLE, root / "sub" / "a.fits.gz")
    os.symlink(root, root / "sub" / "loop")  # a folder link back up the tree
    os.symlink(root / "self.fits", root / "self.fits")  # a link to itself
    os.symlink(root / "gone.fits", root / "dangling.fits")
    result = CliRunner().invoke(app, ["run", str(root), "-o", str(tmp_path / "out"), "-r", "--no-colorize",
                                      "--no-upscale", "--format", "png"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "sub" / "a.enhanced.png").exists()
    report = json.loads((tmp_path / "out" / "astroenhance-report.json").read_text())
    skipped = {Path(r["input"]).name: r["error"] for r in report["records"] if r["status"] == "skipped"}
    assert set(skipped) == {"self.fits", "dangling.fits"} and "loops or points nowhere" in skipped["self.fits"]


def test_a_table_in_a_folder_is_skipped_and_named_one_fails(tmp_path):
    """An archive folder holds catalogues and association tables beside its frames: a FITS file with no image in
    any HDU is skipped there, with the reason (exit 0); named on the command line it is an error (exit 1)."""
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(EXAMPLE, root / "a.fits.gz")
    table = fits.BinTableHDU.from_columns([fits.Column("ra", "D", array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(root / "cat_asn.fits")
    args = ["--no-colorize", "--no-upscale", "--format", "png"]
    result = runner.invoke(app, ["run", str(root), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.enhanced.png").exists()
    assert "1 done, 1 skipped, 0 failed" in result.output and "skipped" in result.output and "cat_asn.fits" in result.output
    report = json.loads((tmp_path / "out" / "astroenhance-report.json").read_text())
    [rec] = [r for r in report["records"] if r["status"] == "skipped"]
    assert rec["input"].endswith("cat_asn.fits") and rec["error"].startswith("not a frame: no image data in any HDU")
    result = runner.invoke(app, ["run", str(root / "cat_asn.fits"), "-o", str(tmp_path / "out2"), *args])
    assert result.exit_code == 1 and "no image data in any HDU" in result.output
    assert not any(p.suffix == ".png" for p in (tmp_path / "out2").glob("*"))


def test_two_inputs_with_one_output_are_refused_by_the_dry_run_as_by_the_run(tmp_path):
    """a.fits and a.fits.gz (or a.jpg) in one folder all make a.enhanced.*: the run refuses all but the first, and the
    dry run listed all three as to be enhanced; it names the collisions now, with exit status 1."""
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(EXAMPLE, root / "a.fits.gz")
    with fits.open(EXAMPLE) as h:
        h.writeto(root / "a.fits")
    said = {}
    for extra in (["--dry-run"], []):
        result = runner.invoke(app, ["run", str(root), "-o", str(tmp_path / "out"), "--no-colorize", "--no-upscale",
                                     "--format", "png", *extra], terminal_width=400)
        assert result.exit_code == 1, result.output
        said[bool(extra)] = " ".join(result.output.split())
    why = f"a.fits.gz: its output {tmp_path / 'out' / 'a.enhanced.png'} is also the output of {root / 'a.fits'}"
    assert why in said[True] and why in said[False]
    assert "1 input(s) would be enhanced" in said[True] and "1 refused" in said[True]


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    import os

    fifo = tmp_path / "pipe.fits"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["run", str(fifo), str(EXAMPLE), "-o", str(tmp_path / "out"), "--no-colorize",
                                      "--no-upscale", "--format", "png"])
    assert result.exit_code == 1
    assert f"error: {fifo}: a FIFO, not a regular file" in result.output
    assert (tmp_path / "out" / "abell_2744_group_of_galaxies_f105w.enhanced.png").exists()


def test_an_input_named_like_an_output_is_never_overwritten(tmp_path):
    folder = tmp_path / "ow"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (20, 16), (10, 20, 30)).save(folder / "a.png")
    Image.new("RGB", (20, 16), (200, 100, 50)).save(folder / "a.enhanced.png")
    before = (folder / "a.enhanced.png").read_bytes()
    result = CliRunner().invoke(app, ["run", str(folder / "a.png"), str(folder / "a.enhanced.png"), "-o", str(folder),
                                      "--no-colorize", "--no-upscale"])
    assert result.exit_code == 1 and "is one of this run's inputs and would overwrite it" in result.output
    assert (folder / "a.enhanced.png").read_bytes() == before


def test_disk_full_for_images_is_a_clean_stop_not_a_crash(tmp_path, monkeypatch):
    """The PNG/JPEG/TIFF encoders write through a memory-mapped scratch: its blocks are reserved first, so a full
    disk is one line and a clean stop (not SIGBUS), with nothing left behind, also for the default fits,png."""
    import errno

    src = _copies(tmp_path, 2)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    for fmt in ("png", "tiff", "fits,png"):
        out = tmp_path / f"out-{fmt}"
        result = runner.invoke(app, ["run", str(src), "-o", str(out), "--format", fmt, "-q", "--no-colorize",
                                     "--no-upscale"])
        assert result.exit_code == 1, result.output
        assert "no space left" in result.output and "stopped: the output disk is full" in result.output
        assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json"]  # no scratch, no temporary


def test_skip_existing_redoes_image_outputs_of_a_changed_input(tmp_path):
    """Image-only outputs carry the input's sha256 too: --skip-existing skips a finished frame of *this* input and
    redoes one whose input changed since."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    for fmt in ("png", "jpeg", "tiff"):
        img = src / "a.png"
        Image.new("RGB", (24, 20), (10, 80, 200)).save(img)
        out = tmp_path / f"out-{fmt}"
        args = ["run", str(img), "-o", str(out), "--format", fmt, "--no-colorize", "--no-upscale", "--skip-existing"]
        assert runner.invoke(app, args).exit_code == 0
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and "1 skipped" in again.output, (fmt, again.output)
        Image.new("RGB", (24, 20), (200, 80, 10)).save(img)  # the input changes: the frame is redone
        third = runner.invoke(app, args)
        assert third.exit_code == 0 and "1 done" in third.output, (fmt, third.output)


def test_skip_existing_redoes_frames_made_with_other_settings(tmp_path):
    """--skip-existing skipped a frame whose outputs another --sr-model, colour strength or stretch had made (the
    folder then mixed settings without a word); now those are made again. How it is computed (device, tile) does
    not count; an output that records no settings digest (AE_SETSH) is made again."""
    from astropy.io import fits

    from .conftest import EXAMPLE

    out = tmp_path / "out"
    base = ["run", str(EXAMPLE), "-o", str(out), "--format", "fits,png", "-q", "--skip-existing"]
    assert runner.invoke(app, base).exit_code == 0
    fits_out = out / "abell_2744_group_of_galaxies_f105w.enhanced.fits"
    first = fits.getheader(fits_out)["AE_SETSH"]
    for same in ([], ["--device", "cpu", "--tile", "128", "--overlap", "8"]):
        again = runner.invoke(app, base + same)
        assert again.exit_code == 0 and "0 done, 1 skipped" in again.output, (same, again.output)
    for other in (["--color-strength", "0.5"], ["--sr-model", "psnr"], ["--stretch", "sqrt"]):
        planned = runner.invoke(app, base + other + ["--dry-run"])
        assert "made with other settings or weights (AE_SETSH): they would be made again" in planned.output
        again = runner.invoke(app, base + other)
        assert again.exit_code == 0 and "1 done, 0 skipped" in again.output, (other, again.output)
        assert "made with other settings or weights (AE_SETSH): made again" in again.output  # said, also with -q
        [record] = json.loads((out / "astroenhance-report.json").read_text())["records"]
        assert any("made again" in n for n in record["notes"])  # and in the report
        assert fits.getheader(fits_out)["AE_SETSH"] not in (first, "")
    assert runner.invoke(app, base).exit_code == 0  # back to the defaults: made again, with the first digest
    assert fits.getheader(fits_out)["AE_SETSH"] == first
    with fits.open(fits_out, mode="update") as h:  # an output of an earlier version: no digest
        del h[0].header["AE_SETSH"]
    again = runner.invoke(app, base)
    assert again.exit_code == 0 and "1 done, 0 skipped" in again.output


def test_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of `run --jobs 2` takes its worker processes with it (none left finishing frames for nobody)."""
    import time

    src = _copies(tmp_path, 6)
    proc = subprocess.Popen([sys.executable, "-m", "astroenhance.cli", "run", str(src), "-o", str(tmp_path / "out"),
                             "--jobs", "2", "--format", "fits", "-q"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:  # the pool's two workers (plus its resource tracker)
        workers = [p for p in children() if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]
        time.sleep(0.2)
    assert len(workers) == 2
    time.sleep(2)  # let them load and start frames
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() and
                                         "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")
                                         for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if Path(f"/proc/{p}").exists()
                and "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]


def test_temporaries_name_their_owner_and_only_provably_dead_ones_go(tmp_path):
    """Another machine's live temporaries in a shared folder are left alone; this machine's of a dead process (or a
    reused pid) are removed; this process's own stay."""
    from astroenhance.io.writers import TEMP_MARKER, host_name, temporary_path

    own = temporary_path(tmp_path / "a.fits")
    assert host_name() in own.name and f"~{os.getpid()}~" in own.name
    own.write_text("x")
    names = {
        "other_host": f".b.fits{TEMP_MARKER}elsewhere.example~1~123-abcd",
        "dead_here": f".c.fits{TEMP_MARKER}{host_name()}~999999999~1-abcd",
        "reused_pid": f".d.fits{TEMP_MARKER}{host_name()}~{os.getppid()}~1-abcd",
    }
    for n in names.values():
        (tmp_path / n).write_text("x")
    removed = {p.name for p in cleanup_stale_temporaries(tmp_path)}
    assert removed == {names["dead_here"], names["reused_pid"]}
    assert own.exists() and (tmp_path / names["other_host"]).exists()
    assert cleanup_stale_temporaries(tmp_path, mine=True) == [own]  # (an interrupted run's own, at its end)
    assert (tmp_path / names["other_host"]).exists()


def test_concurrent_reports_merge_and_shards_keep_their_own(tmp_path):
    from astroenhance.batch import Record, report_path, write_report

    write_report(tmp_path, [Record("a.fits", "done")], {"run": 1})
    write_report(tmp_path, [Record("b.fits", "failed", error="x")], {"run": 2})
    rep = json.loads(report_path(tmp_path).read_text())
    assert sorted(r["input"] for r in rep["records"]) == ["a.fits", "b.fits"] and len(rep["runs"]) == 2
    assert rep["summary"] == {"done": 1, "skipped": 0, "failed": 1}
    write_report(tmp_path, [Record("a.fits", "skipped")], {"run": 3})  # newest record of an input wins
    rep = json.loads(report_path(tmp_path).read_text())
    assert {r["input"]: r["status"] for r in rep["records"]} == {"a.fits": "skipped", "b.fits": "failed"}
    p = write_report(tmp_path, [Record("c.fits", "done")], {}, shard=(3, 8))
    assert p.name == "astroenhance-report.shard-3-of-8.json"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["astroenhance-report.json", p.name]


def test_long_names_and_read_only_folders_report_the_real_problem(tmp_path):
    """A final name near the 255-byte limit gets a temporary that fits (the final name is legal, so must the run be)."""
    from astroenhance.io.writers import temporary_path

    long_name = "x" * 230 + ".enhanced.fits"
    tmp = temporary_path(tmp_path / long_name)
    assert len(tmp.name.encode()) <= 255 and tmp.parent == tmp_path
    src = tmp_path / ("y" * 200 + ".fits.gz")
    src.write_bytes(EXAMPLE.read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(src), "-o", str(out), "--no-colorize", "--no-upscale", "--format", "fits"])
    assert result.exit_code == 0, result.output


def test_a_read_only_output_is_reported_not_the_cleanups_error(tmp_path, monkeypatch):
    """Writing fails on a read-only file system, and so does every cleanup unlink: the one line says read-only
    (the cause), not the cleanup's error, and the run ends cleanly with exit 1."""
    import errno
    import pathlib

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "posix_fallocate", refuse)
    monkeypatch.setattr(pathlib.Path, "unlink", refuse)
    result = runner.invoke(app, ["run", str(EXAMPLE), "-o", str(tmp_path / "o"), "--no-colorize", "--no-upscale",
                                 "--format", "fits,png"])
    assert result.exit_code == 1
    [line] = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "Read-only file system" in line and "Traceback" not in result.output


def test_a_worker_that_dies_fails_its_frames_in_one_line_each(tmp_path, monkeypatch):
    """A pool whose worker is killed (out of memory, a signal) does not end in a traceback: the frames it leaves
    are failed with the reason, the report is written, exit 1."""
    from concurrent.futures.process import BrokenProcessPool

    class DeadPool:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, task):
            from concurrent.futures import Future

            f = Future()
            f.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
            return f

    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", DeadPool)
    src = _copies(tmp_path, 2)
    result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--jobs", "2", "--no-colorize",
                                 "--no-upscale", "--format", "png"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("a worker process died") >= 2
    report = json.loads((tmp_path / "out" / "astroenhance-report.json").read_text())
    assert [r["status"] for r in report["records"]] == ["failed", "failed"]


def test_pool_workers_spread_over_the_gpus(monkeypatch):
    """`--jobs N --device cuda`: worker k takes GPU k mod N; a run on the CPU or on a numbered GPU stays where it is,
    and a worker's GPU replaces the run's "cuda"/"auto" in the enhancer it builds."""
    from astroenhance import runner as pool
    from astroenhance.config import EnhanceConfig

    assert [pool.worker_device("cuda", k, 2) for k in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert pool.worker_device("auto", 3, 4) == "cuda:3"
    assert pool.worker_device("cpu", 1, 2) is None and pool.worker_device("cuda:1", 0, 2) is None
    assert pool.worker_device("auto", 0, 0) is None
    monkeypatch.setattr(pool, "_ENHANCERS", {})
    monkeypatch.setattr(pool, "_WORKER_DEVICE", "cpu")  # what a worker's own device would be, on this machine
    config = EnhanceConfig(device="auto", upscale=False, colorize=False)
    enh = pool.enhancer_for(config)
    assert enh.config.device == "cpu" and pool.enhancer_for(config) is enh


def test_a_write_failing_in_the_writer_thread_stops_the_frame_and_leaves_nothing(tmp_path, monkeypatch):
    """Finished rows are written by a thread while the next are computed: a write that fails there (the disk fills
    mid-frame) still ends the frame with that error, and no output or temporary is left."""
    from astroenhance.config import EnhanceConfig
    from astroenhance.errors import DiskFullError
    from astroenhance.io import writers
    from astroenhance.pipeline import Enhancer

    calls = []
    real = writers.FITSRGBWriter.write_block

    def fails_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise DiskFullError(f"{self.final}: writing rows failed (No space left on device)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(writers.FITSRGBWriter, "write_block", fails_on_the_third)
    out = tmp_path / "out"
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False, formats=("fits",), tile=32, overlap=8))
    with pytest.raises(DiskFullError, match="No space left"):
        enh.enhance_file(FIXTURES / "j8bt06nyq_flt_crop.fits", out)
    assert len(calls) >= 3 and list(out.iterdir()) == []


def test_a_worker_divides_the_cores_among_torch_and_the_host_threads():
    """`--jobs N`: each worker's torch threads and those of its numpy reading and writing are its share of the cores (in a fresh process: the setting
    is process-wide)."""
    import subprocess
    import sys

    code = ("import torch; from astroenhance import cores; from astroenhance.runner import set_threads; "
            "set_threads(1); import os; print(torch.get_num_threads(), cores.host_threads(), os.environ['OMP_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1", "1"]


def test_a_job_keeps_library_warnings_quiet_in_any_process(tmp_path, monkeypatch):
    """`run_job` (what each --jobs worker and Dask task runs) silences the warnings libraries raise on odd files, as
    the main process does around the batch: a worker has no such filter of its own, and astropy's would reach the
    user's terminal past --quiet."""
    import warnings

    from astroenhance import runner
    from astroenhance.config import EnhanceConfig

    class Noisy:
        def enhance_file(self, path, outdir, **kwargs):
            warnings.warn("an astropy-like note on an odd header", UserWarning, stacklevel=2)
            return []

    monkeypatch.setattr(runner, "enhancer_for", lambda config, low_memory=False: Noisy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a fresh worker: nothing filtered
        result = runner.run_job(runner.Task(EnhanceConfig(device="cpu"), Job(EXAMPLE, tmp_path)))
        warnings.warn("after the job, warnings are shown again", UserWarning, stacklevel=2)
    assert result.record.status == "done"
    assert [str(w.message) for w in caught] == ["after the job, warnings are shown again"]


def test_of_one_exposures_files_in_a_folder_only_the_most_calibrated_is_enhanced(tmp_path):
    """An archive download holds every processing level of an exposure: raw, ima, flt, flc (WFPC2 d0m, c0m; drz,
    drc).  `run` on the folder enhances the most calibrated of each rootname and lists the others as skipped, naming
    it; a lone raw frame, a file named on the command line and --all-products are enhanced.  An exposure's images
    that are not of the sky (WFPC2's raw DQ and engineering data, the jitter image) are skipped in folders."""
    from astroenhance.batch import best_products, not_sky

    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    frame = np.random.default_rng(0).normal(10, 1, (12, 12)).astype(np.float32)
    names = ["x_raw.fits", "x_ima.fits", "x_flt.fits", "x_flc.fits", "y_raw.fits", "y_flt.fits.gz", "z_raw.fits",
             "u_d0m.fits", "u_c0m.fits", "w_drz.fits", "w_drc.fits", "w_flt.fits", "sub/x_raw.fits", "q_rms.fits",
             "u_q0m.fits", "u_x0f.fits", "x_jif.fits"]
    for name in names:
        fits.PrimaryHDU(frame).writeto(data / name)
    skipped = []
    jobs = best_products(not_sky(discover([data], tmp_path / "o", recursive=True), skipped), skipped)
    kept = sorted(str(j.path.relative_to(data)) for j in jobs)
    assert kept == ["q_rms.fits", "sub/x_raw.fits", "u_c0m.fits", "w_drc.fits", "w_flt.fits", "x_flc.fits",
                    "y_flt.fits.gz", "z_raw.fits"]
    why = {str(p.relative_to(data)): w for p, w in skipped}
    assert sorted(why) == ["u_d0m.fits", "u_q0m.fits", "u_x0f.fits", "w_drz.fits", "x_flt.fits", "x_ima.fits",
                           "x_jif.fits", "x_raw.fits", "y_raw.fits"]
    assert why["u_q0m.fits"] == "the raw data-quality file of exposure u, not a sky frame"
    assert why["x_raw.fits"].startswith("a less calibrated product of the exposure than x_flc.fits")
    assert why["w_drz.fits"].startswith("a less calibrated product of the exposure than w_drc.fits")
    named = [Job(data / "x_raw.fits", tmp_path), Job(data / "x_flc.fits", tmp_path)]
    assert best_products(named) == named  # named on the command line: each is enhanced
    assert not_sky([Job(data / "x_jif.fits", tmp_path)]) == [Job(data / "x_jif.fits", tmp_path)]

    runner = CliRunner()
    result = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), "--dry-run", "-r"])
    assert result.exit_code == 0, result.output
    assert "8 input(s) would be enhanced" in result.output and "than x_flc.fits, which is enhanced" in result.output
    result = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), "--dry-run", "-r", "--all-products"])
    assert "14 input(s) would be enhanced" in result.output, result.output  # (not the 3 images of no sky)
    result = runner.invoke(app, ["run", str(data / "z_raw.fits"), "-o", str(tmp_path / "r"), "--no-upscale",
                                 "--no-colorize", "--format", "fits"])
    assert result.exit_code == 0 and "an uncalibrated (raw) exposure" in result.output, result.output


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_stops_a_parallel_batch_at_once_and_reports_what_finished(tmp_path, how):
    """Ctrl-C of `run --jobs 2` (SIGINT to the terminal's process group), or a batch system's SIGTERM to `run`: no
    queued frame starts afterwards, the frames being enhanced leave nothing behind, the report says which
    finished, exit 130 (143); --skip-existing goes on."""
    import time

    src = _copies(tmp_path, 6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "astroenhance.cli", "run", str(src), "--format", "fits", "--jobs", "2", "-o", str(out)]
    # (SIGINT's default restored: a test run started in the background, `nohup ... &`, passes it on ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*.enhanced.fits")):
        time.sleep(0.05)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.terminate()
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # hung (its workers deadlocked): leave no processes behind
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == (130 if how == "ctrl-c" else 143), stderr
    assert ("interrupted:" if how == "ctrl-c" else "terminated (SIGTERM):") in stderr and "--skip-existing" in stderr
    records = {Path(r["input"]).name: r for r in json.loads((out / "astroenhance-report.json").read_text())["records"]}
    done = {n for n, r in records.items() if r["status"] == "done"}
    assert len(records) == 6 and 1 <= len(done) < 6, records  # before: every queued frame still ran after Ctrl-C
    for name, r in records.items():
        made = (out / (name.split(".")[0] + ".enhanced.fits")).exists()
        assert made == (name in done), (name, r)  # an unfinished frame has no output, a finished one has it
        assert name in done or "interrupted" in r["error"]
    assert not [p for p in out.iterdir() if "astroenhance-tmp" in p.name]
    rerun = subprocess.run(cmd[:-2] + ["-o", str(out), "--skip-existing", "-q"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(out.glob("*.enhanced.fits"))) == 6


def test_a_multichip_file_is_written_whole_or_not_at_all(tmp_path):
    """A file whose second chip has no data fails as a whole: its first chip's outputs, finished before, are not
    left behind (they were: a file reported failed with half its outputs under final names)."""
    good = np.random.default_rng(1).normal(100.0, 5.0, (40, 40)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(good, name="SCI", ver=1),
                  fits.ImageHDU(np.full((40, 40), np.nan, np.float32), name="SCI", ver=2)]).writeto(tmp_path / "two.fits")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(tmp_path / "two.fits"), "-o", str(out), "--no-colorize", "-q"])
    assert result.exit_code == 1
    assert "[sci2]: no finite pixels" in result.output and "no chip of the file is written" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json"]
    result = runner.invoke(app, ["run", str(tmp_path / "two.fits"), "-o", str(out), "--no-colorize", "-q",
                                 "--hdu", "sci1"])
    assert result.exit_code == 0 and (out / "two.sci1.enhanced.fits").exists()


def test_a_jpeg_larger_than_jpeg_allows_is_refused_before_any_work(tmp_path):
    """A 17,000-pixel-wide picture gives a 68,000-pixel-wide output: the JPEG failed only after the whole frame
    was computed ("broken data stream", and libjpeg's own line on the terminal); now at once, naming the limit and
    the formats that can hold it, with nothing left under a final name."""
    from PIL import Image

    Image.fromarray(np.zeros((4, 16_400), np.uint8)).save(tmp_path / "wide.png")
    result = runner.invoke(app, ["run", str(tmp_path / "wide.png"), "-o", str(tmp_path / "o"), "--format",
                                 "png,jpeg", "--no-colorize"])
    assert result.exit_code == 1 and "more than JPEG's 65,500 a side" in result.output
    assert "--format png or tiff" in result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["astroenhance-report.json"]


@pytest.mark.parametrize("command", [["run", str(EXAMPLE)], ["train", "sr-hst", "--truth", str(EXAMPLE), "--iters", "1"],
                                     ["prepare", str(EXAMPLE.parent)]])
def test_an_output_folder_on_a_read_only_disk_is_refused_once_before_any_work(tmp_path, monkeypatch, command):
    """-o on a read-only file system: `run` failed every frame with the same line ("cannot create output folder"),
    then the report; `train` and `prepare` ended with a traceback (OSError: [Errno 30]). Now it is one usage line,
    before anything is read."""
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    access, statvfs = os.access, os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != frozen and access(p, mode, **k))
    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == frozen else statvfs(p))
    result = runner.invoke(app, [*command, "-o", str(frozen / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in said, said
    assert said.count(f"{frozen / 'out'}: cannot be an output folder ({frozen}, where it would be made, is on a "
                      "read-only file system); choose another -o") == 1


def test_an_interrupted_run_leaves_no_temporary_of_its_own_wherever_the_interrupt_landed(tmp_path, monkeypatch):
    """Ctrl-C lands between any two steps of a frame; some steps (a writer being made, its thread starting or
    draining) left their temporary behind, found one at a time by CI runs of the Ctrl-C batch test. At the end of an
    interrupted run (its workers gone) its temporaries are removed, wherever the interrupt landed; another live
    process's in the same folder stay."""
    from astroenhance.io.writers import TEMP_MARKER, temporary_path
    from astroenhance.pipeline import Enhancer

    out = tmp_path / "out"
    out.mkdir()
    other = out / f".z.enhanced.fits{TEMP_MARKER}elsewhere.example~1~123-abcd"
    other.write_text("another machine's, being written")

    def cut(self, path, outdir, **kwargs):
        temporary_path(Path(outdir) / "example.enhanced.fits").write_text("half")  # (a step that did not clean up)
        raise KeyboardInterrupt

    monkeypatch.setattr(Enhancer, "enhance_file", cut)
    result = runner.invoke(app, ["run", str(EXAMPLE), "-o", str(out), "--format", "fits"])
    assert result.exit_code == 130 and "interrupted:" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(["astroenhance-report.json", other.name])


def test_an_interrupted_process_removes_every_temporary_it_made_wherever_it_made_them(tmp_path):
    """`remove_own_temporaries` (what an interrupted command does as it ends): this process's temporaries, in every
    folder it made one in, files and scratch folders; another live process's stay."""
    from astroenhance.combining import scratch_folder
    from astroenhance.io.writers import TEMP_MARKER, owner_tag, remove_own_temporaries, temporary_path

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (a, b, c):
        folder.mkdir()
    left = [temporary_path(a / "x.enhanced.fits"), temporary_path(b / "y.enhanced.png")]
    for t in left:
        t.write_text("half")
    with scratch_folder(c, "mosaic"):  # (a scratch folder in c: as if another one's cleanup had not run)
        scratch = c / f".mosaic{TEMP_MARKER}{owner_tag()}-abcd1234"
        scratch.mkdir()
    other = a / f".z.fits{TEMP_MARKER}elsewhere.example~1~123-abcd"
    other.write_text("another machine's")
    removed = remove_own_temporaries()
    assert {*left, scratch} <= set(removed) and other not in removed
    assert [p.name for p in a.iterdir()] == [other.name] and list(b.iterdir()) == list(c.iterdir()) == []


def test_an_interrupted_compose_leaves_no_temporary_wherever_the_interrupt_landed(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM in `compose` (as in any command but `run`, which says more): the temporaries it made are
    removed as it ends, also one a step did not clean up itself."""
    import astroenhance.compose
    from astroenhance.io.writers import temporary_path

    out = tmp_path / "o"

    def cut(*args, **kwargs):
        out.mkdir(exist_ok=True)
        temporary_path(out / "composite.fits").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(astroenhance.compose, "composite_source", cut)
    shutil.copy(EXAMPLE, tmp_path / "second.fits.gz")
    result = runner.invoke(app, ["compose", str(EXAMPLE), str(tmp_path / "second.fits.gz"), "-o", str(out)])
    assert result.exit_code == 130 and result.output.startswith("interrupted:")
    assert list(out.iterdir()) == []


def test_a_small_file_written_whole_leaves_nothing_when_interrupted(tmp_path):
    """`write_whole` (reports, figures, training tiles): an interruption while the temporary is written (Ctrl-C,
    SIGTERM as `prepare` or `evaluate` gets it) left the temporary behind; a failing write is one `OutputError`."""
    from astroenhance.errors import OutputError
    from astroenhance.io.writers import write_whole

    def cut(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_whole(tmp_path / "r.json", cut)
    assert list(tmp_path.iterdir()) == []

    def full(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"r\.json: cannot write the report \(No space left on device\)"):
        write_whole(tmp_path / "r.json", full)
    assert list(tmp_path.iterdir()) == []
    assert write_whole(tmp_path / "r.json", lambda tmp: tmp.write_text("{}")).read_text() == "{}"


def _signal_mask() -> set:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def _mask_after_init(parent_pid):
    """In a pool worker: its signal mask as it starts, and after `runner._init_worker`."""
    import multiprocessing

    from astroenhance import runner

    before = _signal_mask()
    runner._init_worker(parent_pid, multiprocessing.Value("i", 0), "cpu", 0)
    return before, _signal_mask()


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_parallel_workers_start_with_ctrl_c_held_until_their_handlers_are_set():
    """A Ctrl-C (to the terminal's process group) while `run --jobs N`'s workers were still starting — importing
    torch, before `_init_worker` set them to leave it to the parent — killed them, and the broken pool printed a
    traceback of its own (concurrent.futures' InvalidStateError on futures already cancelled; 3 in 4 Ctrl-Cs about
    3 s into a run). Workers now start with SIGINT and SIGTERM blocked, inherited from the parent's mask while it
    starts them, until their handlers are set; the parent gets back its own mask, and a signal that came meanwhile."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from astroenhance.runner import signals_held_for_workers

    held = {signal.SIGINT, signal.SIGTERM}
    before = _signal_mask()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with signals_held_for_workers():
            assert held <= _signal_mask()
            fut = pool.submit(_mask_after_init, os.getpid())
        at_start, after_init = fut.result(timeout=120)
    assert held <= at_start and not held & after_init
    assert _signal_mask() == before
    with pytest.raises(KeyboardInterrupt), signals_held_for_workers():
        signal.raise_signal(signal.SIGINT)  # (held: it acts as the block ends)


def test_ctrl_c_while_a_parallel_batch_hands_out_its_frames_stops_it(tmp_path, monkeypatch):
    """An interrupt while `run --jobs N` was still handing frames to its workers came before the batch's stop
    handling: the pool's shutdown then waited for every frame handed out so far to be enhanced. Now those are
    cancelled as at any other moment: nothing is written, the report says each is not finished."""
    from concurrent.futures import ProcessPoolExecutor

    submit, calls = ProcessPoolExecutor.submit, []

    def interrupted_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", interrupted_on_the_second)
    src = _copies(tmp_path, 3)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(src), "--format", "fits", "--jobs", "2", "-o", str(out)])
    assert result.exit_code == 130 and "interrupted: 3 input(s) not finished" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == ["astroenhance-report.json"]


def test_ctrl_c_while_the_report_is_written_waits_for_it(tmp_path, monkeypatch):
    """The report, the record of what finished, was written after the batch's stop handling: a Ctrl-C (or a batch
    system's SIGTERM) as it was written lost it. It is written whole, and the interrupt acts after (exit 130)."""

    import astroenhance.batch

    write_report = astroenhance.batch.write_report

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # (Ctrl-C as the report begins: within, its writing)
        return write_report(*args, **kwargs)

    monkeypatch.setattr(astroenhance.batch, "write_report", interrupted)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(EXAMPLE), "--format", "fits", "-o", str(out)])
    assert result.exit_code == 130 and "interrupted" in result.output
    report = json.loads((out / "astroenhance-report.json").read_text())
    assert [r["status"] for r in report["records"]] == ["done"]
    assert sorted(p.name for p in out.iterdir()) == ["abell_2744_group_of_galaxies_f105w.enhanced.fits",
                                                     "astroenhance-report.json"]
