"""Tests of the stored-resolution datasets: tinyimagenet, imagenet, imagefolder with ``size``.

Every layout is a small synthetic tree written in tmp_path, with the oddities of real
collections: grayscale, CMYK and EXIF-rotated JPEGs, a PNG named .JPEG, a truncated file, and
the strays (.DS_Store, Thumbs.db, annotation tables).
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augkd.data import load_dataset
from augkd.data.dataset import tensors_checksum
from augkd.data.decode import decode_square
from augkd.data.imagenet import parse_label_table, read_class_list
from augkd.data.imagenet100 import IMAGENET100
from augkd.data.stored import arrays_checksum

WNIDS = ["n03000000", "n01000000", "n02000000"]  # unsorted on purpose: labels come from sorting
SIZE = 16
REAL_ARCHIVE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.xz"
)


# ---------------------------------------------------------------------------------- builders


def _photo(seed: int, hw: tuple[int, int] = (24, 40)) -> np.ndarray:
    """A smooth random RGB picture (JPEG keeps smooth pictures close to their pixels)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((hw[1], hw[0]), Image.Resampling.BILINEAR))


def _jpeg(pixels: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


def _odd_files() -> dict[str, bytes]:
    """One of each oddity, by a name that says what it is."""
    gray = Image.fromarray(_photo(90)[..., 0])
    cmyk = Image.fromarray(_photo(91)).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=95)
    cmyk_bytes = buffer.getvalue()
    buffer = io.BytesIO()
    gray.save(buffer, format="JPEG", quality=95)
    gray_bytes = buffer.getvalue()
    # stored on its side (40 wide, 24 high) with orientation 6: upright it is 24 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated_bytes = _jpeg(_photo(92), exif=exif.tobytes())
    png = io.BytesIO()
    Image.fromarray(_photo(93)).save(png, format="PNG")
    return {"gray.JPEG": gray_bytes, "cmyk.JPEG": cmyk_bytes, "rotated.JPEG": rotated_bytes,
            "png_named.JPEG": png.getvalue()}


def _truncated() -> bytes:
    data = _jpeg(_photo(99, (64, 64)))
    return data[: len(data) // 2]


def _strays(folder: Path) -> None:
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")


def build_tiny(base: Path, *, odd: bool = True, truncated: bool = False,
               per_class: tuple[int, int] = (4, 2)) -> Path:
    """A Tiny ImageNet release in ``base/tiny-imagenet-200``; returns that folder."""
    root = base / "tiny-imagenet-200"
    seed = 0
    (root / "test" / "images").mkdir(parents=True)
    (root / "test" / "images" / "test_0.JPEG").write_bytes(_jpeg(_photo(7)))  # never read
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    for w in WNIDS:
        images = root / "train" / w / "images"
        images.mkdir(parents=True)
        boxes = []
        for k in range(per_class[0]):
            seed += 1
            (images / f"{w}_{k}.JPEG").write_bytes(_jpeg(_photo(seed)))
            boxes.append(f"{w}_{k}.JPEG\t0\t0\t10\t10")
        (root / "train" / w / f"{w}_boxes.txt").write_text("\n".join(boxes) + "\n")
    if odd:
        for name, data in _odd_files().items():
            (root / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_{name}").write_bytes(data)
        _strays(root / "train" / WNIDS[0] / "images")
    if truncated:
        (root / "train" / WNIDS[1] / "images" / "cut.JPEG").write_bytes(_truncated())
    (root / "val" / "images").mkdir(parents=True)
    notes = []
    for k in range(per_class[1] * len(WNIDS)):
        seed += 1
        name = f"val_{k}.JPEG"
        (root / "val" / "images" / name).write_bytes(_jpeg(_photo(seed)))
        notes.append(f"{name}\t{WNIDS[k % len(WNIDS)]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    return root


def build_imagenet(base: Path, *, flat_val: str | None = None) -> Path:
    """ImageNet's layout in ``base``: ``train/<wnid>/`` and ``val/<wnid>/``, or a flat ``val/``
    with ``LOC_val_solution.csv`` (``flat_val="csv"``) or ``val_labels.txt`` (``"txt"``)."""
    seed = 100
    for w in WNIDS:
        folder = base / "train" / w
        folder.mkdir(parents=True)
        for k in range(3):
            seed += 1
            (folder / f"{w}_{k}.JPEG").write_bytes(_jpeg(_photo(seed, (30 + k, 50))))
    _strays(base / "train" / WNIDS[0])
    for name, data in _odd_files().items():
        (base / "train" / WNIDS[1] / name).write_bytes(data)
    rows = []
    for k in range(6):
        seed += 1
        w = WNIDS[k % 3]
        name = f"ILSVRC2012_val_{k + 1:08d}"
        folder = base / "val" / (w if flat_val is None else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.JPEG").write_bytes(_jpeg(_photo(seed, (50, 30))))
        rows.append((name, w))
    if flat_val == "csv":
        (base / "LOC_val_solution.csv").write_text(
            "ImageId,PredictionString\n"
            + "".join(f"{n},{w} 1 2 30 40 {w} 3 4 20 20\n" for n, w in rows))
    elif flat_val == "txt":
        (base / "val" / "val_labels.txt").write_text(
            "".join(f"{n}.JPEG {w}\n" for n, w in rows))
    return base


def build_folder(base: Path) -> Path:
    """``train/<class>/`` and ``test/<class>/`` with images of different sizes."""
    seed = 200
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("zebra", "ant"):
            folder = base / split / cls
            folder.mkdir(parents=True)
            for k in range(count):
                seed += 1
                (folder / f"img{k}.jpg").write_bytes(_jpeg(_photo(seed, (20 + 7 * k, 33))))
    for name, data in _odd_files().items():
        (base / "train" / "ant" / name).write_bytes(data)
    _strays(base / "train" / "zebra")
    _strays(base / "test" / "ant")
    return base


def _load(name: str, root: Path, cache_dir: Path, **options):
    return load_dataset(name, root, cache_dir=str(cache_dir), workers=1, **options)


# ---------------------------------------------------------------------------------- decoding


def test_decode_square_is_the_centre_square_of_the_short_side() -> None:
    # left third red, middle third green, right third blue, 30 high and 90 wide: the centre
    # square is the green third (its border columns blend a little of their neighbours, as a
    # short-side resize followed by a centre crop does)
    pixels = np.zeros((30, 90, 3), dtype=np.uint8)
    pixels[:, :30, 0] = pixels[:, 30:60, 1] = pixels[:, 60:, 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    out = decode_square(buffer.getvalue(), 10, 10**6)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    inner = out[:, 1:-1]
    assert (inner[..., 1] == 255).all()
    assert (inner[..., 0] == 0).all() and (inner[..., 2] == 0).all()
    assert (out[..., 1] >= 200).all() and (out[..., [0, 2]] <= 55).all()


def test_odd_files_are_decoded_to_rgb(tmp_path: Path) -> None:
    odd = _odd_files()
    gray = decode_square(odd["gray.JPEG"], SIZE, 10**6)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    # the PNG named .JPEG is read by content: exactly the PNG's pixels, resampled
    png = decode_square(odd["png_named.JPEG"], SIZE, 10**6)
    reference = Image.fromarray(_photo(93)).resize((SIZE, SIZE), Image.Resampling.BILINEAR,
                                                   box=(8, 0, 32, 24))
    np.testing.assert_array_equal(png, np.asarray(reference))
    cmyk = decode_square(odd["cmyk.JPEG"], SIZE, 10**6)
    straight = decode_square(_jpeg(_photo(91)), SIZE, 10**6)
    assert np.abs(cmyk.astype(int) - straight.astype(int)).mean() < 12
    # EXIF orientation 6: the stored picture turned 90 degrees clockwise
    rotated = decode_square(odd["rotated.JPEG"], SIZE, 10**6)
    upright = np.ascontiguousarray(np.rot90(_photo(92), k=-1))
    expected = decode_square(_jpeg(upright), SIZE, 10**6)
    unturned = decode_square(_jpeg(_photo(92)), SIZE, 10**6)
    err_turned = np.abs(rotated.astype(int) - expected.astype(int)).mean()
    err_unturned = np.abs(rotated.astype(int) - unturned.astype(int)).mean()
    assert err_turned < 6 < err_unturned


# ---------------------------------------------------------------------------------- tinyimagenet


def test_tiny_imagenet_layout_labels_and_odd_files(tmp_path: Path) -> None:
    root = build_tiny(tmp_path / "src")
    data = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    assert data.classes == sorted(WNIDS)
    assert data.train_images.shape == (3 * 4 + 4, 3, SIZE, SIZE)
    assert data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (6, 3, SIZE, SIZE)
    # labels by sorted wnid; the four odd files are all in class WNIDS[0]
    counts = torch.bincount(data.train_labels, minlength=3).tolist()
    assert counts == [4, 4, 4 + 4]  # sorted: n01, n02, n03 (= WNIDS[0], with the odd files)
    # val labels come from val_annotations.txt: val_k -> WNIDS[k % 3]
    expected = [sorted(WNIDS).index(WNIDS[k % 3]) for k in range(6)]
    assert sorted(data.test_labels.tolist()) == sorted(expected)
    assert data.options == {"size": SIZE}
    assert data.base_aug == "crop+flip" and data.eval_crop == 1.0
    # the first training image is exactly the decoder's output of its file
    first = decode_square((root / "train" / "n01000000" / "images" / "n01000000_0.JPEG"),
                          SIZE, 10**6)
    assert torch.equal(data.train_images[0], torch.from_numpy(first).permute(2, 0, 1))
    # the checksum is tensors_checksum of the four arrays
    assert data.checksum == tensors_checksum(data.classes, data.train_images, data.train_labels,
                                             data.test_images, data.test_labels)


def test_tiny_imagenet_from_its_zip(tmp_path: Path) -> None:
    build_tiny(tmp_path / "src", odd=False)
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "src").rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(tmp_path / "src").as_posix())
    from_zip = _load("tinyimagenet", archive, tmp_path / "cache", size=SIZE)
    from_dir = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    assert from_zip.checksum == from_dir.checksum  # same pixels, same identity


def test_truncated_file_is_refused_by_name_or_skipped_and_counted(tmp_path: Path) -> None:
    build_tiny(tmp_path / "src", odd=False, truncated=True)
    with pytest.raises(ValueError, match=r"cut\.JPEG.*bad_images=skip"):
        _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    with pytest.warns(UserWarning, match=r"left out 1 unreadable image.*cut\.JPEG"):
        data = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
                     bad_images="skip")
    assert len(data.train_labels) == 12
    assert data.options == {"size": SIZE, "bad_images": "skip"}
    (manifest,) = (tmp_path / "cache").glob("*/manifest.json")
    assert [Path(p).name for p in json.loads(manifest.read_text())["skipped"]] == ["cut.JPEG"]


def test_unknown_stray_file_and_missing_annotations_are_named(tmp_path: Path) -> None:
    root = build_tiny(tmp_path / "src", odd=False)
    (root / "train" / WNIDS[1] / "images" / "notes.docx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"notes\.docx is not an image"):
        _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    (root / "train" / WNIDS[1] / "images" / "notes.docx").unlink()
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(ValueError, match=r"val_annotations\.txt does not exist"):
        _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    with pytest.raises(ValueError, match="no wnids.txt"):
        _load("tinyimagenet", tmp_path / "src" / "tiny-imagenet-200" / "train",
              tmp_path / "cache", size=SIZE)


# ---------------------------------------------------------------------------------- cache


def test_cache_is_reused_memory_mapped_and_rebuilt_when_the_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = build_tiny(tmp_path / "src", odd=False)
    cache = tmp_path / "cache"
    first = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    folders = sorted(p.name for p in cache.iterdir())
    assert len(folders) == 1 and folders[0].startswith(f"tinyimagenet-{SIZE}px-")

    import augkd.data.stored as stored

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(stored, "decode_into", no_decoding)
    again = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    assert again.checksum == first.checksum
    assert torch.equal(again.train_images, first.train_images)
    # memory-mapped copy-on-write: a write stays in this tensor and never reaches the file
    kept = first.train_images[0].clone()
    again.train_images[0].fill_(0)
    third = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    assert torch.equal(third.train_images[0], kept) and not torch.equal(kept, again.train_images[0])
    monkeypatch.undo()

    # another size is another folder
    _load("tinyimagenet", tmp_path / "src", cache, size=8)
    assert len(list(cache.iterdir())) == 2
    # a changed source file rebuilds
    target = root / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_0.JPEG"
    target.write_bytes(_jpeg(_photo(555)))
    stamp = time.time() + 5
    os.utime(target, (stamp, stamp))
    changed = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    assert changed.checksum != first.checksum
    assert len(list(cache.iterdir())) == 3
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_cache_off_and_stale_build_folder_removed(tmp_path: Path) -> None:
    build_tiny(tmp_path / "src", odd=False)
    cache = tmp_path / "cache"
    data = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE, cache=False)
    assert not cache.exists()
    cached = _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    assert cached.checksum == data.checksum
    assert torch.equal(cached.test_images, data.test_images)
    # a build killed half way (its process gone) leaves a temporary folder: the next build of
    # that key removes it
    (folder,) = cache.iterdir()
    stale = cache / f".{folder.name}.999999999.tmp"
    stale.mkdir()
    import shutil

    shutil.rmtree(folder)
    _load("tinyimagenet", tmp_path / "src", cache, size=SIZE)
    assert not stale.exists()


def test_a_damaged_cache_folder_is_rebuilt(tmp_path: Path) -> None:
    build_tiny(tmp_path / "src", odd=False)
    first = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    (folder,) = (tmp_path / "cache").iterdir()
    (folder / "train_labels.npy").unlink()
    with pytest.warns(UserWarning, match="ignoring damaged cache folder"):
        again = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    assert again.checksum == first.checksum
    assert (folder / "train_labels.npy").is_file()


def test_arrays_checksum_matches_tensors_checksum() -> None:
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    labels = np.array([1, 0], dtype=np.int64)
    assert arrays_checksum(["a", "b"], [images, labels], chunk=1) == tensors_checksum(
        ["a", "b"], torch.from_numpy(images), torch.from_numpy(labels))


# ---------------------------------------------------------------------------------- imagenet


@pytest.mark.parametrize("flat_val", [None, "csv", "txt"])
def test_imagenet_layouts_give_the_same_dataset(tmp_path: Path, flat_val: str | None) -> None:
    build_imagenet(tmp_path / "src", flat_val=flat_val)
    data = _load("imagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    assert data.classes == sorted(WNIDS)
    assert data.train_images.shape == (9 + 4, 3, SIZE, SIZE)  # with the four odd files
    assert torch.bincount(data.train_labels).tolist() == [3 + 4, 3, 3]  # n01 = WNIDS[1]
    assert data.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.base_aug == "resized-crop+flip" and data.eval_crop == 0.875
    if flat_val is not None:  # same pixels and labels as the foldered layout
        foldered = _load("imagenet", build_imagenet(tmp_path / "ref"), tmp_path / "cache",
                         size=SIZE)
        assert data.checksum == foldered.checksum


def test_imagenet_flat_val_needs_labels(tmp_path: Path) -> None:
    root = build_imagenet(tmp_path / "src", flat_val="csv")
    (root / "LOC_val_solution.csv").rename(tmp_path / "elsewhere.csv")
    with pytest.raises(ValueError, match="val_labels=FILE"):
        _load("imagenet", root, tmp_path / "cache", size=SIZE)
    data = _load("imagenet", root, tmp_path / "cache", size=SIZE,
                 val_labels=str(tmp_path / "elsewhere.csv"))
    assert data.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="needs the option size=PX"):
        load_dataset("imagenet", root)


def test_imagenet_kaggle_download_from_its_top_folder(tmp_path: Path) -> None:
    top = tmp_path / "kaggle"
    build_imagenet(top / "ILSVRC" / "Data" / "CLS-LOC", flat_val="csv")
    (top / "ILSVRC" / "Data" / "CLS-LOC" / "LOC_val_solution.csv").rename(
        top / "LOC_val_solution.csv")
    for split in ("train", "val"):  # the boxes, a train/val pair of XML at the same depth
        folder = top / "ILSVRC" / "Annotations" / "CLS-LOC" / split
        folder.mkdir(parents=True)
        (folder / "a.xml").write_text("<annotation/>")
    (top / "ILSVRC" / "Data" / "CLS-LOC" / "test").mkdir()
    (top / "ILSVRC" / "Data" / "CLS-LOC" / "test" / "x.JPEG").write_bytes(_jpeg(_photo(1)))
    (top / "LOC_synset_mapping.txt").write_text("".join(f"{w} thing\n" for w in WNIDS))
    data = _load("imagenet", top, tmp_path / "cache", size=SIZE)
    reference = _load("imagenet", build_imagenet(tmp_path / "ref"), tmp_path / "cache",
                      size=SIZE)
    assert data.checksum == reference.checksum


def test_label_table_formats_and_errors() -> None:
    csv_text = "ImageId,PredictionString\nILSVRC2012_val_00000001,n01 1 2 3 4\n"
    assert parse_label_table(csv_text, "x") == {"ILSVRC2012_val_00000001": "n01"}
    assert parse_label_table("a.JPEG n02 0 0 9 9\nb n03\n", "x") == {"a": "n02", "b": "n03"}
    with pytest.raises(ValueError, match="devkit"):
        parse_label_table("65\n970\n", "gt.txt")
    with pytest.raises(ValueError, match=r"gt.txt, line 2: expected 'file wnid'"):
        parse_label_table("a n01\nlonely\n", "gt.txt")
    with pytest.raises(ValueError, match="listed twice"):
        parse_label_table("a.JPEG n01\na.png n02\n", "gt.txt")


# ---------------------------------------------------------------------------------- class subset


def test_class_subset_by_list(tmp_path: Path) -> None:
    build_imagenet(tmp_path / "src")
    chosen = tmp_path / "two.txt"
    chosen.write_text(f"# two classes\n{WNIDS[0]}\n\n{WNIDS[1]}  # the first\n")
    data = _load("imagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
                 classes=str(chosen))
    assert data.classes == sorted(WNIDS[:2])
    assert len(data.train_labels) == 6 + 4 and len(data.test_labels) == 4
    assert data.options["classes"] == str(chosen)
    chosen.write_text("n09999999\n")
    with pytest.raises(ValueError, match="has no class n09999999"):
        _load("imagenet", tmp_path / "src", tmp_path / "cache", size=SIZE, classes=str(chosen))
    with pytest.raises(FileNotFoundError, match="neither a known class list"):
        _load("imagenet", tmp_path / "src", tmp_path / "cache", size=SIZE, classes="imagenet99")


def test_imagenet100_list_is_the_cmc_list() -> None:
    names = read_class_list("imagenet100")
    assert len(names) == 100 == len(set(names))
    assert all(len(n) == 9 and n.startswith("n") and n[1:].isdigit() for n in names)
    # first and last entries of HobbitLong/CMC imagenet100.txt
    assert names[0] == "n02869837" and names[-1] == IMAGENET100[-1] == "n02090622"


# ---------------------------------------------------------------------------------- imagefolder


def test_imagefolder_with_size_reads_images_of_any_size(tmp_path: Path) -> None:
    build_folder(tmp_path / "src")
    # without size, the folder is read as it always was: every file must be an image
    with pytest.raises(ValueError, match=r"cannot read image .*Thumbs\.db"):
        load_dataset("imagefolder", tmp_path / "src", cache=False)
    data = _load("imagefolder", tmp_path / "src", tmp_path / "cache", size=SIZE)
    assert data.classes == ["ant", "zebra"]
    assert data.train_images.shape == (6 + 4, 3, SIZE, SIZE)  # with the four odd files
    assert data.test_images.shape == (4, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="need size=PX"):
        load_dataset("imagefolder", tmp_path / "src", classes="x.txt")


def test_use_options_do_not_change_the_checksum(tmp_path: Path) -> None:
    build_tiny(tmp_path / "src", odd=False)
    plain = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE)
    used = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
                 base_aug="resized-crop+flip", eval_crop=0.875, data_on_device="never")
    assert used.checksum == plain.checksum
    assert (used.base_aug, used.eval_crop, used.data_on_device) == (
        "resized-crop+flip", 0.875, "never")
    with pytest.raises(ValueError, match="data_on_device must be one of"):
        _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
              data_on_device="sometimes")
    with pytest.raises(ValueError, match="unknown augmentation"):
        _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
              base_aug="resized-crap")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason="cifar10-jpeg.tar.xz not available")
def test_cifar10_jpeg_archive_upscaled_to_64px(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset("imagefolder", REAL_ARCHIVE, size=64, train_subset=500,
                            cache_dir=str(tmp_path), workers=2)
    assert data.train_images.shape == (500, 3, 64, 64)
    assert data.test_images.shape == (10_000, 3, 64, 64)
    assert data.num_classes == 10
    assert data.options["size"] == 64 and data.options["train_subset"] == 500


def test_transforms_and_sweep_specs_take_the_new_options(tmp_path: Path) -> None:
    """train_subset cuts a memory-mapped set; a sweep spec accepts size, classes, base_aug."""
    import yaml

    from augkd.sweep.spec import validate_spec

    build_tiny(tmp_path / "src", odd=False)
    data = _load("tinyimagenet", tmp_path / "src", tmp_path / "cache", size=SIZE,
                 train_subset=6)
    assert data.train_images.shape == (6, 3, SIZE, SIZE)
    assert torch.bincount(data.train_labels).tolist() == [2, 2, 2]
    spec = yaml.safe_load((Path(__file__).parents[1] / "experiments" / "digits_smoke.yaml")
                          .read_text())
    spec["dataset"] = {"name": "tinyimagenet", "root": str(tmp_path / "src"),
                       "options": {"size": 32, "classes": "imagenet100",
                                   "base_aug": "resized-crop+flip", "data_on_device": "auto"}}
    validate_spec(spec)


def test_a_student_and_a_ranking_take_the_teachers_loader_options(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """A teacher trained on an image folder stored at size 16 leaves its loader options
    (size, ...) to the student and the ranking that name it and give no data flags: both load
    the same data (the teacher check would refuse other data), and say so in one line."""
    from augkd.rank import main as rank_main
    from augkd.train import main as train_main

    root = build_folder(tmp_path / "folder")
    monkeypatch.setenv("AUGKD_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "data.yaml"
    config.write_text(f"dataset: imagefolder\nroot: {root}\n"
                      "dataset_options: {size: 16, workers: 1}\n")
    common = ["--epochs", "1", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert train_main(["teacher", "--config", str(config), "--model", "resnet8", *common,
                       "--out", str(tmp_path / "teacher")]) == 0
    assert train_main(["student", "--teacher", str(tmp_path / "teacher"), "--model", "resnet8",
                       "--agb-lambda", "0.5", *common, "--out", str(tmp_path / "student")]) == 0
    from augkd.training.run import RunDir

    assert RunDir(tmp_path / "student").read_config().dataset_options["size"] == 16
    assert rank_main(["--teacher", str(tmp_path / "teacher"), "--augs", "flip", "--epochs", "2",
                      "--batch-size", "2", "--group-size", "2", "--device", "cpu",
                      "--no-progress", "--out", str(tmp_path / "rank")]) == 0
    summary = json.loads((tmp_path / "rank" / "summary.json").read_text())
    assert summary["protocol"]["dataset_options"]["size"] == 16
