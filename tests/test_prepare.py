"""`astroenhance prepare`: tiles, deterministic split by source image, sources untouched."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.training.prepare import PrepareConfig, assign_splits, prepare, tile_starts


def _tree_digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def source(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(src / f"colour{i}.png")
    grey = rng.integers(0, 255, (150, 200), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(src / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(src / "small.png")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    return src


def test_tiles_split_and_record(source, tmp_path):
    before = _tree_digest(source)
    rec = prepare(source, tmp_path / "out", PrepareConfig(tile=(128, 96), split=(80, 10, 10), seed=3))
    assert _tree_digest(source) == before  # nothing in the source changed
    assert len(rec["images"]) == 10
    reasons = {s["file"]: s["reason"] for s in rec["skipped"]}
    assert "grey" in reasons["sub/grey.png"] and "smaller" in reasons["small.png"] and "unreadable" in reasons["broken.png"]
    splits = [i["split"] for i in rec["images"]]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (8, 1, 1)
    for img in rec["images"]:
        assert [(t["y"], t["x"]) for t in img["tiles"]] == [(0, 0), (0, 72), (54, 0), (54, 72)]  # 2x2, overlapping
        for t in img["tiles"]:
            assert t["file"].startswith(img["split"] + "/")
            tile = np.asarray(Image.open(tmp_path / "out" / t["file"]))
            orig = np.asarray(Image.open(source / img["file"]))
            assert tile.shape == (96, 128, 3)
            np.testing.assert_array_equal(tile, orig[t["y"]:t["y"] + 96, t["x"]:t["x"] + 128])
    record = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert record["counts"]["train"] == 32 and record["tool"].startswith("astroenhance ")


def test_split_is_deterministic_and_seeded(source, tmp_path):
    a = prepare(source, tmp_path / "a", PrepareConfig(tile=(128, 96), seed=1))
    b = prepare(source, tmp_path / "b", PrepareConfig(tile=(128, 96), seed=1))
    c = prepare(source, tmp_path / "c", PrepareConfig(tile=(128, 96), seed=2))
    key = lambda r: {i["file"]: i["split"] for i in r["images"]}  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.png")) == sorted(p.name for p in (tmp_path / "b").rglob("*.png"))


def test_preparing_again_replaces_the_earlier_tiles_and_never_touches_other_files(source, tmp_path):
    """A second prepare into the same folder with another tile size or seed left the first one's tiles beside the
    new ones: tiles of two sizes, and images whose split changed in train/ and val/ at once. Now the folder holds
    exactly what prepare.json lists; a split folder holding a file prepare did not write is refused untouched."""
    out = tmp_path / "out"
    prepare(source, out, PrepareConfig(tile=(64, 64), seed=1))
    rec = prepare(source, out, PrepareConfig(tile=(128, 96), seed=2))
    listed = sorted(t["file"] for i in rec["images"] for t in i["tiles"])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == listed
    by_image = {}
    for p in out.rglob("*.png"):
        by_image.setdefault(p.name.rsplit("_y", 1)[0], set()).add(p.parent.name)
    assert all(len(splits) == 1 for splits in by_image.values())  # no image in two splits
    (out / "val" / "notes.txt").write_text("mine")
    before = _tree_digest(out)
    with pytest.raises(ValueError, match="notes.txt"):
        prepare(source, out, PrepareConfig(tile=(64, 64)))
    assert _tree_digest(out) == before


def test_a_full_disk_is_one_line_and_preparing_again_finishes(source, tmp_path, monkeypatch):
    """`prepare` on a disk that filled up ended with Pillow's traceback (OSError from a PNG chunk's write) and left
    the cut-short tile's temporary, which the next `prepare` refused as a file it did not write. Now it is one line
    naming the tile, nothing half-written is left, and preparing again after freeing space finishes."""
    import errno

    save, saved = Image.Image.save, []

    def full_on_fifth(self, fp, *args, **kwargs):
        saved.append(fp)
        if len(saved) == 5:
            Path(fp).write_bytes(b"\x89PNG cut short")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_on_fifth)
    result = CliRunner().invoke(app, ["prepare", str(source), "-o", str(tmp_path / "out"), "--tile", "128x96"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert f"{saved[4].name.split('.astroenhance-tmp-')[0].lstrip('.')}: cannot write the tile (No space left" in said
    made = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(made) == 4 and all(p.name.endswith(".png") and not p.name.startswith(".") for p in made)
    monkeypatch.setattr(Image.Image, "save", save)
    rec = prepare(source, tmp_path / "out", PrepareConfig(tile=(128, 96)))
    assert sum(rec["counts"].values()) == 40 == len([p for p in (tmp_path / "out").rglob("*.png")])


def test_output_inside_source_is_refused(source):
    with pytest.raises(ValueError, match="inside the source"):
        prepare(source, source / "tiles")


def test_command_line(source, tmp_path):
    res = CliRunner().invoke(app, ["prepare", str(source), "-o", str(tmp_path / "o"), "--tile", "128x96", "--split", "8/1/1"])
    assert res.exit_code == 0, res.output
    assert "10 images" in res.output
    res = CliRunner().invoke(app, ["prepare", str(source), "-o", str(tmp_path / "p")])  # default 2040x1356: all too small
    assert res.exit_code == 1 and "no usable image" in res.output
    res = CliRunner().invoke(app, ["prepare", str(source), "-o", str(tmp_path / "q"), "--tile", "big"])
    assert res.exit_code == 2


def test_training_reads_the_train_split_of_a_prepared_folder(source, tmp_path):
    from astroenhance.training.train import training_folder, validation_folder

    prepare(source, tmp_path / "o", PrepareConfig(tile=(128, 96)))
    assert training_folder(str(tmp_path / "o")).endswith("train")
    assert validation_folder(str(tmp_path / "o")).endswith("val")
    assert training_folder(str(source)) == str(source)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 5000), tile=st.integers(1, 600))
def test_tile_starts_cover_the_axis_with_the_fewest_tiles(length, tile):
    starts = tile_starts(length, tile)
    if length < tile:
        assert starts == []
        return
    assert len(starts) == -(-length // tile)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(b - a <= tile for a, b in zip(starts, starts[1:]))  # no gaps


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 10))
def test_every_image_gets_exactly_one_split(n, seed):
    names = [f"img{i}.png" for i in range(n)]
    out = assign_splits(names, (80, 10, 10), seed)
    assert set(out) == set(names) and set(out.values()) <= {"train", "val", "test"}
    assert assign_splits(list(reversed(names)), (80, 10, 10), seed) == out  # order of discovery does not matter


def test_training_images_are_read_upright_as_run_reads_pictures(tmp_path):
    from astroenhance.training.data import load_rgb

    stored = np.zeros((64, 40, 3), np.uint8)  # stored sideways; EXIF 6: viewers turn it 90 degrees clockwise
    stored[:8, :8] = (250, 30, 30)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    upright = load_rgb(tmp_path / "phone.jpg")
    assert upright.shape == (40, 64, 3)
    assert upright[:8, -8:, 0].mean() > 200  # the stored top-left corner is the upright top-right one


def test_training_images_keep_their_tones_at_16_bits_and_in_colour(tmp_path):
    """16-bit and float pictures are scaled from their data type's range as `run` scales them: a 16-bit grey PNG
    was clipped at 255 by Pillow's conversion (everything above 1/256 of full scale white); 8-bit ones unchanged."""
    import tifffile

    from astroenhance.training.data import load_rgb

    ramp = np.linspace(0, 65535, 48 * 32).reshape(48, 32).astype(np.uint16)
    want = np.floor(ramp / 65535 * 255 + 0.5).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    got = load_rgb(tmp_path / "grey16.png")
    assert got.shape == (48, 32, 3) and np.array_equal(got[..., 0], want) and np.array_equal(got[..., 2], want)
    colour = np.stack([ramp, ramp[::-1], np.full_like(ramp, 32768)], -1)
    tifffile.imwrite(tmp_path / "colour16.tif", colour)
    got = load_rgb(tmp_path / "colour16.tif")
    assert np.array_equal(got[..., 1], want[::-1]) and (got[..., 2] == 128).all()
    eight = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(eight).save(tmp_path / "eight.png")
    assert np.array_equal(load_rgb(tmp_path / "eight.png"), eight)


def test_astroenhance_outputs_in_a_training_folder_are_left_out_and_said(source, tmp_path):
    """A `run` output among the training images (its detail the networks' own) was tiled as a truth by `prepare`
    (or listed as 'unreadable'), and stopped `train` with an error; now each leaves it out, saying why."""
    from astroenhance.training.data import ImagePool

    ran = CliRunner().invoke(app, ["run", str(source / "colour0.png"), "-o", str(source / "made"), "--no-upscale", "-q"])
    assert ran.exit_code == 0, ran.output
    [made] = (source / "made").glob("*.png")
    rec = prepare(source, tmp_path / "out", PrepareConfig(tile=(128, 96), seed=3))
    assert {"file": f"made/{made.name}", "reason": "an astroenhance output: its detail is the networks' own"} in rec[
        "skipped"]
    assert len(rec["images"]) == 10 and not any(i["file"].startswith("made/") for i in rec["images"])
    (source / "sub" / made.name).write_bytes(made.read_bytes())
    pool = ImagePool.from_folder(source / "sub")
    assert pool.names == ["grey.png"] and [(p.name, why) for p, why in pool.left_out] == [
        (made.name, "an astroenhance output: its detail is the networks' own")]
