"""Tests of augkd.data: digits, image folders and archives, the decode cache, CIFAR pickles."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augkd.data import (
    DATASETS,
    Dataset,
    accepted_options,
    channel_stats,
    list_datasets,
    load_dataset,
)
from augkd.data import cifar as cifar_module
from augkd.data import imagefolder as imagefolder_module
from augkd.data.digits import stratified_split
from augkd.registry import UnknownNameError

REAL_ARCHIVE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.xz"
)
REAL_ARCHIVE_SHA256 = "f7453856acd3811d8bb9297c414e1d265bfe85aaec7b1460a37e9b44e8077808"
# The CIFAR-10 class names in label order (sorted, as the archive's README says).
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]

# Created in this (unsorted) order so that label order must come from sorting the names.
CLASSES = ["zebra", "ant", "moth"]
IMAGE_HW = (5, 4)


# ----------------------------------------------------------------------------------------------
# Builders


def _pixels(seed: int, mode: str = "RGB", hw: tuple[int, int] = IMAGE_HW) -> np.ndarray:
    shape = hw + (3,) if mode == "RGB" else hw
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def build_tree(base: Path, per_split: dict[str, int] | None = None) -> dict[str, dict]:
    """Write ``base/{train,test}/<class>/imgK.png`` and return the pixels each should decode to.

    Returns ``{split: {class: [pixels HxWx3, ...] in file-name order}}``.
    """
    per_split = per_split or {"train": 3, "test": 2}
    expected: dict[str, dict] = {}
    seed = 0
    for split, count in per_split.items():
        expected[split] = {}
        for cls in CLASSES:
            folder = base / split / cls
            folder.mkdir(parents=True)
            expected[split][cls] = []
            for k in range(count):
                seed += 1
                pixels = _pixels(seed)
                (folder / f"img{k}.png").write_bytes(_png_bytes(pixels))
                expected[split][cls].append(pixels)
    return expected


def pack(folder: Path, archive: Path, arcname_prefix: str = "") -> Path:
    """Pack every file and folder under ``folder`` into ``archive`` (kind from its suffix)."""
    entries = sorted(folder.rglob("*"))
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for entry in entries:
                zf.write(entry, arcname_prefix + entry.relative_to(folder).as_posix())
        return archive
    mode = {".tar": "w", ".gz": "w:gz", ".tgz": "w:gz", ".xz": "w:xz"}[archive.suffix]
    with tarfile.open(archive, mode) as tf:
        for entry in entries:
            tf.add(entry, arcname_prefix + entry.relative_to(folder).as_posix(), recursive=False)
    return archive


def expected_tensors(expected: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 [N, 3, H, W] images and int64 labels, classes sorted, files in name order."""
    images, labels = [], []
    for label, cls in enumerate(sorted(CLASSES)):
        for pixels in expected[split][cls]:
            images.append(torch.from_numpy(pixels).permute(2, 0, 1))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ----------------------------------------------------------------------------------------------
# Registry and options


def test_registry_lists_the_datasets() -> None:
    assert set(list_datasets()) == {"digits", "cifar10", "cifar100", "imagefolder",
                                    "tinyimagenet", "imagenet"}
    assert list_datasets() == DATASETS.names()


def test_unknown_dataset_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("cifar1000")
    message = str(info.value)
    assert "cifar1000" in message
    for name in list_datasets():
        assert name in message


def test_unknown_option_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("digits", test_fration=0.3)
    message = str(info.value)
    assert "test_fration" in message and "digits" in message
    assert "test_fraction" in message and "seed" in message
    assert accepted_options("imagefolder") == ["cache", "cache_dir", "max_member_bytes",
                                               "max_image_pixels", "size", "classes",
                                               "bad_images", "workers"]
    assert accepted_options("cifar10") == ["download"]


# ----------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_dtypes_and_values() -> None:
    ds = load_dataset("digits")
    assert ds.train_images.dtype == torch.uint8 and ds.test_images.dtype == torch.uint8
    assert ds.train_labels.dtype == torch.int64 and ds.test_labels.dtype == torch.int64
    assert len(ds.train_labels) + len(ds.test_labels) == 1797
    assert ds.train_images.shape[1:] == (1, 8, 8) and ds.test_images.shape[1:] == (1, 8, 8)
    assert ds.num_classes == 10 and ds.classes == [str(k) for k in range(10)]
    assert ds.in_channels == 1 and ds.image_size == (8, 8)
    assert ds.source == "sklearn"
    # 0..16 scaled to 0..255: both ends are reached and 8 maps to round(127.5) = 128.
    everything = torch.cat([ds.train_images, ds.test_images])
    assert int(everything.min()) == 0 and int(everything.max()) == 255
    allowed = {int(np.floor(v * 255 / 16 + 0.5)) for v in range(17)}
    assert set(everything.unique().tolist()) <= allowed and 128 in allowed
    assert set(ds.train_labels.tolist()) == set(range(10))


def test_digits_split_is_stratified_and_disjoint() -> None:
    from sklearn.datasets import load_digits

    target = load_digits().target
    train, test = stratified_split(target, 0.25, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(target)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    for cls in range(10):
        n_class = int((target == cls).sum())
        assert int((target[test] == cls).sum()) == int(np.floor(n_class * 0.25 + 0.5))

    ds = load_dataset("digits")
    test_counts = torch.bincount(ds.test_labels, minlength=10)
    all_counts = torch.bincount(torch.cat([ds.train_labels, ds.test_labels]), minlength=10)
    assert torch.allclose(
        test_counts.double() / all_counts, torch.full((10,), 0.25, dtype=torch.float64), atol=0.01
    )


def test_digits_default_split_never_changes() -> None:
    from sklearn.datasets import load_digits

    _, test = stratified_split(load_digits().target, 0.25, seed=0)
    assert test[:12].tolist() == [3, 7, 13, 16, 19, 22, 26, 36, 38, 43, 47, 48]
    assert len(test) == 451
    expected = "70a619239214155a76b7f7c3093372ba5df3ee88533b987c93e4b428e9431185"
    assert hashlib.sha256(test.astype(np.int64).tobytes()).hexdigest() == expected
    # The checksum covers pixels, labels and split, so it pins all three.
    assert load_dataset("digits").checksum == (
        "48838fc4d69c7b9978a348c6fa09275a637179ce483f0606fe8608307344511d"
    )


def test_digits_same_split_twice_and_seed_changes_it() -> None:
    first, second = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)
    assert first.checksum == second.checksum
    other = load_dataset("digits", seed=1)
    assert not torch.equal(first.test_images, other.test_images)
    assert other.checksum != first.checksum
    bigger = load_dataset("digits", test_fraction=0.5)
    assert abs(len(bigger.test_labels) - 1797 / 2) <= 10


def test_digits_mean_std_match_the_training_pixels() -> None:
    ds = load_dataset("digits")
    pixels = ds.train_images.double() / 255
    assert ds.mean == pytest.approx((pixels.mean().item(),), rel=1e-9)
    assert ds.std == pytest.approx((pixels.std(unbiased=False).item(),), rel=1e-9)
    assert 0.1 < ds.mean[0] < 0.5 and 0.2 < ds.std[0] < 0.5


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_digits_bad_test_fraction_is_named(fraction: float) -> None:
    with pytest.raises(ValueError, match=f"test_fraction.*{fraction}"):
        load_dataset("digits", test_fraction=fraction)


def test_digits_rejects_a_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="digits.*root"):
        load_dataset("digits", root=tmp_path)


# ----------------------------------------------------------------------------------------------
# Dataset record


def test_dataset_to_properties_and_summary() -> None:
    ds = load_dataset("digits")
    moved = ds.to("cpu")
    assert isinstance(moved, Dataset) and moved.device == torch.device("cpu")
    assert torch.equal(moved.train_images, ds.train_images)
    assert moved.checksum == ds.checksum and moved.classes == ds.classes
    line = ds.summary()
    assert "\n" not in line
    assert "digits" in line and "1,346 train" in line and "451 test" in line and "1x8x8" in line


def test_dataset_rejects_wrong_dtypes_and_shapes() -> None:
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match="train_images must be uint8"):
        Dataset(**{**ds.__dict__, "train_images": ds.train_images.float()})
    with pytest.raises(ValueError, match="test_labels must be int64"):
        Dataset(**{**ds.__dict__, "test_labels": ds.test_labels[:-1]})
    with pytest.raises(ValueError, match="mean and std"):
        Dataset(**{**ds.__dict__, "mean": (0.1, 0.2, 0.3)})


def test_channel_stats_per_channel() -> None:
    images = torch.randint(0, 256, (7, 3, 5, 6), dtype=torch.uint8)
    mean, std = channel_stats(images)
    pixels = images.double() / 255
    assert mean == pytest.approx(tuple(pixels.mean(dim=(0, 2, 3)).tolist()), rel=1e-9)
    assert std == pytest.approx(tuple(pixels.std(dim=(0, 2, 3), unbiased=False).tolist()), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# imagefolder: layouts and archive kinds

ARCHIVE_KINDS = ["dir", "data.tar", "data.tar.gz", "data.tgz", "data.tar.xz", "data.zip"]


def _make_source(tmp_path: Path, kind: str, prefix: str = "") -> tuple[Path, dict]:
    tree = tmp_path / "tree"
    expected = build_tree(tree / prefix if prefix else tree)
    if kind == "dir":
        return tree, expected
    return pack(tree, tmp_path / kind), expected


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_imagefolder_reads_pixels_exactly(tmp_path: Path, cache_dir: Path, kind: str) -> None:
    source, expected = _make_source(tmp_path, kind)
    ds = load_dataset("imagefolder", source, cache_dir=cache_dir)
    assert ds.classes == sorted(CLASSES)
    for split in ("train", "test"):
        images, labels = expected_tensors(expected, split)
        assert torch.equal(getattr(ds, f"{split}_images"), images)
        assert torch.equal(getattr(ds, f"{split}_labels"), labels)
    assert ds.train_images.shape == (9, 3, 5, 4) and ds.image_size == (5, 4)
    assert ds.source == str(source)
    assert ds.mean == pytest.approx(channel_stats(ds.train_images)[0])
    if kind == "dir":
        assert len(ds.checksum) == 64
    else:
        assert ds.checksum == _sha256(source)


@pytest.mark.parametrize("kind", ["dir", "data.tar.gz", "data.zip"])
def test_imagefolder_accepts_one_wrapping_folder(tmp_path: Path, kind: str) -> None:
    source, expected = _make_source(tmp_path, kind, prefix="cifar-mini")
    ds = load_dataset("imagefolder", source, cache=False)
    assert ds.classes == sorted(CLASSES)
    assert torch.equal(ds.test_images, expected_tensors(expected, "test")[0])


def test_imagefolder_same_data_same_checksum_across_kinds(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    from_dir = load_dataset("imagefolder", tree, cache=False)
    from_zip = load_dataset("imagefolder", pack(tree, tmp_path / "a.zip"), cache=False)
    assert torch.equal(from_dir.train_images, from_zip.train_images)
    # A directory's checksum hashes the decoded tensors; the same as the digits/pickle rule.
    assert from_dir.checksum == load_dataset("imagefolder", tree, cache=False).checksum


def test_imagefolder_grayscale_gives_one_channel(tmp_path: Path) -> None:
    expected = {}
    for split in ("train", "test"):
        for k, cls in enumerate(["b", "a"]):
            pixels = _pixels(10 * k + len(split), mode="L")
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(pixels, mode="L").save(tmp_path / split / cls / "x.png")
            expected[(split, cls)] = pixels
    ds = load_dataset("imagefolder", tmp_path, cache=False)
    assert ds.in_channels == 1 and len(ds.mean) == 1
    assert ds.classes == ["a", "b"]
    assert torch.equal(ds.train_images[0, 0], torch.from_numpy(expected[("train", "a")]))


def test_imagefolder_mixed_gray_and_rgb_gives_rgb(tmp_path: Path) -> None:
    gray = _pixels(1, mode="L")
    color = _pixels(2)
    for split in ("train", "test"):
        (tmp_path / split / "c").mkdir(parents=True)
        Image.fromarray(gray, mode="L").save(tmp_path / split / "c" / "0.png")
        Image.fromarray(color).save(tmp_path / split / "c" / "1.png")
    ds = load_dataset("imagefolder", tmp_path, cache=False)
    assert ds.in_channels == 3
    # Pillow's L -> RGB repeats the value in all three channels.
    expected_gray = np.array(Image.fromarray(gray, mode="L").convert("RGB"))
    assert torch.equal(ds.train_images[0], torch.from_numpy(expected_gray).permute(2, 0, 1))
    assert torch.equal(ds.train_images[1], torch.from_numpy(color).permute(2, 0, 1))


def test_imagefolder_ignores_hidden_files(tmp_path: Path) -> None:
    build_tree(tmp_path)
    (tmp_path / "train" / "ant" / ".DS_Store").write_bytes(b"not an image")
    (tmp_path / ".hidden").mkdir()
    ds = load_dataset("imagefolder", tmp_path, cache=False)
    assert len(ds.train_labels) == 9


# ----------------------------------------------------------------------------------------------
# imagefolder: the decode cache


def test_cache_second_load_reads_the_cache_file(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, _ = _make_source(tmp_path, "data.tar.xz")
    first = load_dataset("imagefolder", archive, cache_dir=cache_dir)
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and _sha256(archive) in files[0].name  # keyed by the archive sha256

    def no_decoding(path: Path) -> None:
        raise AssertionError(f"decoded {path} again instead of reading the cache")

    monkeypatch.setattr(imagefolder_module, "read_tree", no_decoding)
    second = load_dataset("imagefolder", archive, cache_dir=cache_dir)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, field), getattr(second, field))
    assert (second.classes, second.mean, second.std, second.checksum) == (
        first.classes,
        first.mean,
        first.std,
        first.checksum,
    )
    # A copy elsewhere has the same bytes, so it shares the cache entry; source is its own path.
    copy = tmp_path / "copy.tar.xz"
    copy.write_bytes(archive.read_bytes())
    assert load_dataset("imagefolder", copy, cache_dir=cache_dir).source == str(copy)


def test_cache_env_variable_sets_the_default_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, _ = _make_source(tmp_path, "data.zip")
    monkeypatch.setenv("AUGKD_CACHE", str(tmp_path / "env-cache"))
    load_dataset("imagefolder", archive)
    assert len(list((tmp_path / "env-cache").glob("imagefolder-*.pt"))) == 1


def test_changed_archive_gets_a_new_cache_key(tmp_path: Path, cache_dir: Path) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    archive = pack(tree, tmp_path / "data.tar")
    before = load_dataset("imagefolder", archive, cache_dir=cache_dir)
    changed = np.zeros(IMAGE_HW + (3,), dtype=np.uint8)
    (tree / "train" / "ant" / "img0.png").write_bytes(_png_bytes(changed))
    archive.unlink()
    pack(tree, archive)
    after = load_dataset("imagefolder", archive, cache_dir=cache_dir)
    assert len(list(cache_dir.iterdir())) == 2
    assert after.checksum != before.checksum
    assert int(after.train_images[0].max()) == 0 and int(before.train_images[0].max()) > 0


def test_changed_directory_gets_a_new_cache_key(tmp_path: Path, cache_dir: Path) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    before = load_dataset("imagefolder", tree, cache_dir=cache_dir)
    assert before.checksum == load_dataset("imagefolder", tree, cache_dir=cache_dir).checksum
    assert len(list(cache_dir.iterdir())) == 1
    (tree / "test" / "moth" / "img9.png").write_bytes(_png_bytes(_pixels(99)))
    after = load_dataset("imagefolder", tree, cache_dir=cache_dir)
    assert len(list(cache_dir.iterdir())) == 2
    assert len(after.test_labels) == len(before.test_labels) + 1
    assert after.checksum != before.checksum


def test_cache_false_writes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    archive, _ = _make_source(tmp_path, "data.zip")
    load_dataset("imagefolder", archive, cache=False, cache_dir=cache_dir)
    assert not cache_dir.exists()


def test_unreadable_cache_file_is_rebuilt(tmp_path: Path, cache_dir: Path) -> None:
    archive, expected = _make_source(tmp_path, "data.tar.gz")
    load_dataset("imagefolder", archive, cache_dir=cache_dir)
    (cache_file,) = cache_dir.iterdir()
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=str(cache_file.name)):
        ds = load_dataset("imagefolder", archive, cache_dir=cache_dir)
    assert torch.equal(ds.train_images, expected_tensors(expected, "train")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("imagefolder", archive, cache_dir=cache_dir)  # rewritten, reads cleanly
    assert [p.name for p in cache_dir.iterdir()] == [cache_file.name]  # no temp files left


# ----------------------------------------------------------------------------------------------
# imagefolder: errors name the path or value


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.tar.xz"
    with pytest.raises(FileNotFoundError, match="nowhere.tar.xz"):
        load_dataset("imagefolder", missing)


def test_imagefolder_needs_a_root() -> None:
    with pytest.raises(ValueError, match="imagefolder.*root"):
        load_dataset("imagefolder")


def test_unsupported_file_kind_is_named(tmp_path: Path) -> None:
    odd = tmp_path / "images.rar"
    odd.write_bytes(b"Rar!")
    with pytest.raises(ValueError, match=r"images\.rar.*\.zip"):
        load_dataset("imagefolder", odd, cache=False)


# Truncated and corrupt archives: a cut anywhere, or a damaged member, is refused naming the
# file, never read as a smaller valid archive. The cuts cover the whole file (and, for a plain
# .tar, every header, data and padding boundary), so no outcome depends on where data lands.

CUT_KINDS = ["data.tar", "data.tar.gz", "data.tgz", "data.tar.xz", "data.tar.bz2", "data.zip"]
CUT_PER_SPLIT = {"train": 6, "test": 3}  # 27 tiny PNGs under {train,test}/<class>/
CUT_IMAGES = sum(CUT_PER_SPLIT.values()) * len(CLASSES)


def _compress(raw: bytes, suffix: str) -> bytes:
    import bz2
    import gzip
    import lzma

    if suffix in (".gz", ".tgz"):
        return gzip.compress(raw, mtime=0)
    return {".xz": lzma.compress, ".bz2": bz2.compress, ".tar": bytes}[suffix](raw)


def _cut_archive(tmp_path: Path, kind: str) -> Path:
    """A small archive ``tmp_path/kind`` of :data:`CUT_IMAGES` images (any of :data:`CUT_KINDS`)."""
    tree = tmp_path / "tree"
    build_tree(tree, CUT_PER_SPLIT)
    if kind.endswith(".zip"):
        return pack(tree, tmp_path / kind)
    tar = pack(tree, tmp_path / "plain.tar")
    archive = tmp_path / kind
    archive.write_bytes(_compress(tar.read_bytes(), archive.suffix))
    return archive


def _tar_layout(raw: bytes) -> tuple[list[int], int]:
    """The header, data and padding boundaries of the tar ``raw``, and where its end marker is."""
    boundaries, marker = [], 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        for member in tf.getmembers():
            padded = -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            marker = member.offset_data + padded
            boundaries += [member.offset, member.offset_data, member.offset_data + member.size]
    assert raw[marker : marker + 2 * tarfile.BLOCKSIZE] == bytes(2 * tarfile.BLOCKSIZE)
    return boundaries + [marker, marker + tarfile.BLOCKSIZE], marker


def _assert_refused(archive: Path, end_to_end: bool = False) -> None:
    """Reading ``archive`` (its tree, or with ``end_to_end`` the dataset) names it as damaged."""
    from augkd.data.archive import read_tree

    with pytest.raises(ValueError) as info:
        if end_to_end:
            load_dataset("imagefolder", archive, cache=False)
        else:
            read_tree(archive)
    message = str(info.value)
    assert f"cannot read archive {archive}: truncated or corrupt" in message, message


def _cut_positions(data: bytes, stride: int) -> list[int]:
    """Cuts over the whole file: every ``stride``-th byte, plus the first and last 40 bytes."""
    size = len(data)
    return sorted(set(range(0, size, stride)) | set(range(40)) | set(range(size - 40, size)))


@pytest.mark.parametrize("kind", CUT_KINDS)
def test_intact_archive_loads_every_image(tmp_path: Path, kind: str) -> None:
    archive = _cut_archive(tmp_path, kind)
    ds = load_dataset("imagefolder", archive, cache=False)
    assert len(ds.train_images) + len(ds.test_images) == CUT_IMAGES
    assert ds.classes == sorted(CLASSES)


@pytest.mark.parametrize("kind", CUT_KINDS)
def test_truncated_archive_is_named_at_every_cut(tmp_path: Path, kind: str) -> None:
    archive = _cut_archive(tmp_path, kind)
    data = archive.read_bytes()
    if kind.endswith(".tar"):
        boundaries, marker = _tar_layout(data)
        end = marker + 2 * tarfile.BLOCKSIZE  # what follows is record padding, not archive
        near = {b + d for b in boundaries for d in (-1, 0, 1)}
        cuts = sorted({c for c in set(_cut_positions(data[:end], 97)) | near if 0 <= c < end})
    else:
        cuts = _cut_positions(data, 7)
    assert len(cuts) > 100
    cut = tmp_path / ("cut-" + kind)
    for position in cuts:
        cut.write_bytes(data[:position])
        _assert_refused(cut)
    cut.write_bytes(data[: len(data) * 3 // 5])
    _assert_refused(cut, end_to_end=True)


def test_tar_cut_in_its_trailing_record_padding_still_loads(tmp_path: Path) -> None:
    from augkd.data.archive import read_tree

    archive = _cut_archive(tmp_path, "data.tar")
    data = archive.read_bytes()
    _, marker = _tar_layout(data)
    end = marker + 2 * tarfile.BLOCKSIZE
    assert len(data) > end  # tarfile pads to a 10240-byte record
    for position in (end, end + 1, len(data) - 1):
        archive.write_bytes(data[:position])  # the whole archive and its end marker are there
        assert len(read_tree(archive).files) == CUT_IMAGES


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz", ".tar.bz2"])
def test_tar_archive_without_end_marker_is_refused(tmp_path: Path, suffix: str) -> None:
    # Complete compressed streams around a tar that is not whole: the tar itself is checked.
    tar = _cut_archive(tmp_path, "data.tar").read_bytes()
    boundaries, marker = _tar_layout(tar)
    header = bytearray(tar[:512])  # a header block after the last member, zeros replaced
    damaged = {
        "no-marker": tar[:marker],
        "one-zero-block": tar[:marker + tarfile.BLOCKSIZE],
        "garbage-marker": tar[:marker] + bytes(header[:100]) + bytes(924),
        "short-member": tar[: boundaries[-3] - 1],  # the last member's data, one byte short
    }
    for label, raw in damaged.items():
        archive = tmp_path / f"{label}{suffix}"
        archive.write_bytes(_compress(raw, archive.suffix))
        _assert_refused(archive)


def test_archive_compression_is_read_from_its_bytes(tmp_path: Path) -> None:
    from augkd.data.archive import read_tree

    archive = _cut_archive(tmp_path, "data.tar.xz")
    misnamed = tmp_path / "data.tgz"  # xz data under a gzip name
    misnamed.write_bytes(archive.read_bytes())
    assert len(read_tree(misnamed).files) == CUT_IMAGES
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(archive.read_bytes()[:-30])
    _assert_refused(cut)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_with_a_corrupt_member_is_named(tmp_path: Path, compression: int) -> None:
    tree = tmp_path / "tree"
    build_tree(tree, CUT_PER_SPLIT)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", compression=compression) as zf:
        for entry in sorted(tree.rglob("*.png")):
            zf.write(entry, entry.relative_to(tree).as_posix())
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
    data = archive.read_bytes()
    for info in members[:: max(1, len(members) // 5)]:
        # Past the local header (30 bytes, name, no extra field): flip bytes of the member's data.
        start = info.header_offset + 30 + len(info.filename.encode()) + info.compress_size // 2
        damaged = bytearray(data)
        damaged[start : start + 4] = bytes(b ^ 0xFF for b in damaged[start : start + 4])
        archive.write_bytes(bytes(damaged))
        _assert_refused(archive)
    _assert_refused(archive, end_to_end=True)


def test_garbage_archive_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"this is not gzip data at all" * 10)
    with pytest.raises(ValueError, match=r"fake\.tar\.gz.*truncated or corrupt"):
        load_dataset("imagefolder", fake, cache=False)


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split_folder_is_named(tmp_path: Path, missing: str) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    for path in sorted((tree / missing).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tree / missing).rmdir()
    archive = pack(tree, tmp_path / "nosplit.zip")
    with pytest.raises(ValueError, match=rf"nosplit\.zip.*missing {missing}/"):
        load_dataset("imagefolder", archive, cache=False)


def test_empty_archive_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar"
    with tarfile.open(archive, "w"):
        pass
    with pytest.raises(ValueError, match=r"empty\.tar.*train/ and test/"):
        load_dataset("imagefolder", archive, cache=False)


@pytest.mark.parametrize("kind", ["dir", "data.tar", "data.zip"])
def test_empty_class_folder_is_named(tmp_path: Path, kind: str) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    (tree / "test" / "beetle").mkdir()
    (tree / "train" / "beetle").mkdir()
    (tree / "train" / "beetle" / "only.png").write_bytes(_png_bytes(_pixels(5)))
    source = tree if kind == "dir" else pack(tree, tmp_path / kind)
    with pytest.raises(ValueError, match=r"class folder .*test/beetle is empty"):
        load_dataset("imagefolder", source, cache=False)


def test_mixed_image_sizes_name_a_file_and_both_sizes(tmp_path: Path) -> None:
    build_tree(tmp_path)
    odd = tmp_path / "test" / "moth" / "img1.png"
    odd.write_bytes(_png_bytes(_pixels(3, hw=(7, 6))))
    with pytest.raises(ValueError) as info:
        load_dataset("imagefolder", tmp_path, cache=False)
    message = str(info.value)
    assert str(odd) in message and "6x7" in message and "4x5" in message


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    (tree / "train" / "moth" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*train/moth/broken\.png"):
        load_dataset("imagefolder", tree, cache=False)
    archive = pack(tree, tmp_path / "withbad.tar.gz")
    with pytest.raises(ValueError, match=r"withbad\.tar\.gz:train/moth/broken\.png"):
        load_dataset("imagefolder", archive, cache=False)


def test_different_class_sets_are_listed(tmp_path: Path) -> None:
    build_tree(tmp_path)
    renamed = tmp_path / "test" / "wasp"
    (tmp_path / "test" / "ant").rename(renamed)
    with pytest.raises(ValueError) as info:
        load_dataset("imagefolder", tmp_path, cache=False)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "only in train: ant" in message and "only in test: wasp" in message


def test_file_directly_in_a_split_folder_is_named(tmp_path: Path) -> None:
    build_tree(tmp_path)
    (tmp_path / "train" / "stray.png").write_bytes(_png_bytes(_pixels(4)))
    with pytest.raises(ValueError, match=r"train/stray\.png lies directly in train/"):
        load_dataset("imagefolder", tmp_path, cache=False)


# ----------------------------------------------------------------------------------------------
# CIFAR pickle folders


def _cifar_rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 3072), dtype=np.uint8)


def _dump(path: Path, content: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(content, handle)


def write_cifar10(root: Path) -> tuple[np.ndarray, list[int]]:
    """A tiny cifar-10-batches-py (2 images per batch); returns all training rows and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for k in range(1, 6):
        batch_rows, batch_labels = _cifar_rows(2, k), [k % 10, (3 * k) % 10]
        # The release pickles with bytes keys under Python 2; latin1 reading must accept both.
        key = (lambda s: s.encode()) if k % 2 else str
        _dump(
            folder / f"data_batch_{k}",
            {key("data"): batch_rows, key("labels"): batch_labels, key("batch_label"): "x"},
        )
        rows.append(batch_rows)
        labels += batch_labels
    _dump(folder / "test_batch", {"data": _cifar_rows(3, 9), "labels": [9, 0, 4]})
    names = CIFAR10_CLASSES
    _dump(folder / "batches.meta", {"label_names": names, "num_vis": 3072})
    return np.concatenate(rows), labels


def test_cifar10_pickle_layout(tmp_path: Path) -> None:
    rows, labels = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert ds.train_labels.tolist() == labels and ds.test_labels.tolist() == [9, 0, 4]
    assert ds.classes[0] == "airplane" and ds.num_classes == 10
    # A row holds the red plane, then green, then blue, each 32x32 row-major.
    assert int(ds.train_images[4, 1, 2, 3]) == int(rows[4, 1024 + 2 * 32 + 3])
    assert int(ds.train_images[9, 2, 31, 0]) == int(rows[9, 2048 + 31 * 32])
    assert ds.source == str(tmp_path / "cifar-10-batches-py")
    assert ds.checksum == load_dataset("cifar10", str(tmp_path)).checksum


def test_cifar100_pickle_layout_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train_rows = _cifar_rows(4, 1)
    fine = ["apple", "aquarium_fish"] + [f"class{k:02d}" for k in range(98)]
    _dump(
        folder / "train",
        {"data": train_rows, "fine_labels": [0, 99, 1, 5], "coarse_labels": [0, 1, 2, 3]},
    )
    _dump(
        folder / "test", {"data": _cifar_rows(2, 2), "fine_labels": [7, 8], "coarse_labels": [0, 0]}
    )
    _dump(folder / "meta", {"fine_label_names": fine, "coarse_label_names": ["a", "b"]})
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.classes[:2] == ["apple", "aquarium_fish"]
    assert ds.train_labels.tolist() == [0, 99, 1, 5] and ds.test_labels.tolist() == [7, 8]
    assert torch.equal(ds.train_images.reshape(4, -1), torch.from_numpy(train_rows))
    # the published CIFAR-100 constants, not the statistics of these 4 images
    assert (ds.mean, ds.std) == ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))


def test_cifar_checksum_follows_the_data(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "a")
    write_cifar10(tmp_path / "b")
    first = load_dataset("cifar10", tmp_path / "a")
    assert load_dataset("cifar10", tmp_path / "b").checksum == first.checksum
    batch = tmp_path / "b" / "cifar-10-batches-py" / "test_batch"
    _dump(batch, {"data": _cifar_rows(3, 10), "labels": [9, 0, 4]})
    assert load_dataset("cifar10", tmp_path / "b").checksum != first.checksum


@pytest.mark.parametrize(
    "name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_missing_cifar_folder_says_how_to_download(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert str(tmp_path / folder) in message and "download=True" in message
    assert "--download" in message
    assert list(tmp_path.iterdir()) == []  # nothing fetched implicitly


def test_cifar_download_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(release: object, root: Path) -> None:
        calls.append(root)
        write_cifar10(root)

    monkeypatch.setattr(cifar_module, "_download", fake_download)
    with pytest.raises(FileNotFoundError):
        load_dataset("cifar10", tmp_path)
    assert calls == []
    ds = load_dataset("cifar10", tmp_path, download=True)
    assert calls == [tmp_path] and len(ds.train_labels) == 10
    load_dataset("cifar10", tmp_path, download=True)  # present now: no second fetch
    assert calls == [tmp_path]


def test_cifar_needs_a_root() -> None:
    with pytest.raises(ValueError, match="cifar100.*root"):
        load_dataset("cifar100")


def test_missing_cifar_batch_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_dataset("cifar10", tmp_path)


def test_corrupt_cifar_batch_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:50])
    with pytest.raises(ValueError, match=rf"{batch}.*truncated or corrupt"):
        load_dataset("cifar10", tmp_path)


def test_cifar_batch_with_wrong_shape_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(batch, {"data": np.zeros((3, 100), dtype=np.uint8), "labels": [0, 1, 2]})
    with pytest.raises(ValueError, match=rf"{batch}.*3072"):
        load_dataset("cifar10", tmp_path)


# ----------------------------------------------------------------------------------------------
# The real archive (CIFAR-10 as JPEG q75), when this checkout has it


def test_real_cifar10_jpeg_archive(tmp_path: Path) -> None:
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"{REAL_ARCHIVE} is not present")
    cache_dir = tmp_path / "cache"
    ds = load_dataset("imagefolder", REAL_ARCHIVE, cache_dir=cache_dir)
    assert ds.train_images.shape == (50_000, 3, 32, 32)
    assert ds.test_images.shape == (10_000, 3, 32, 32)
    assert ds.classes == CIFAR10_CLASSES
    assert torch.bincount(ds.train_labels).tolist() == [5000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.checksum == REAL_ARCHIVE_SHA256
    # CIFAR-10's training statistics, roughly (JPEG q75 shifts them a little).
    assert ds.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.005)
    assert ds.std == pytest.approx((0.2470, 0.2435, 0.2616), abs=0.01)
    cached = load_dataset("imagefolder", REAL_ARCHIVE, cache_dir=cache_dir)
    assert torch.equal(cached.test_images, ds.test_images)
    assert torch.equal(cached.train_labels, ds.train_labels)
    assert os.path.getsize(next(cache_dir.iterdir())) > 150_000_000  # the decoded tensors


def test_a_dataset_is_named_in_the_spec_grammar_too(tmp_path):
    """``digits(train_subset=300)`` is ``digits`` with that option, in load_dataset, in a
    config (which records the plain name and the options) and on the command line."""
    from augkd.data import load_dataset
    from augkd.train import build_parser, config_from_args
    from augkd.training import TrainConfig

    by_spec = load_dataset("digits(train_subset=300, subset_seed=2)")
    by_options = load_dataset("digits", train_subset=300, subset_seed=2)
    assert by_spec.checksum == by_options.checksum and by_spec.options == by_options.options
    cfg = TrainConfig(dataset="digits(resize=6)", dataset_options={"train_subset": 300})
    assert (cfg.dataset, cfg.dataset_options) == ("digits", {"resize": 6, "train_subset": 300})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    args = build_parser().parse_args(["teacher", "--dataset", "digits(resize=6)",
                                      "--train-subset", "300"])
    assert config_from_args(args).dataset_options == {"resize": 6, "train_subset": 300}
    with pytest.raises(ValueError, match="'resize' given in the spec"):
        load_dataset("digits(resize=6)", resize=8)
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset("digits(size=6)")
