"""Tiny ImageNet and ImageNet in their distributed layouts, decoded to a stored resolution.

``tinyimagenet`` reads the official release (``tiny-imagenet-200``, as a folder or its .zip)::

    wnids.txt  words.txt
    train/<wnid>/images/<wnid>_<k>.JPEG   (and train/<wnid>/<wnid>_boxes.txt, not used)
    val/images/val_<k>.JPEG               val/val_annotations.txt: file, wnid, box (tab-separated)
    test/images/...                       unlabelled: not read

``imagenet`` reads ImageNet-1K (ILSVRC 2012) as ``train/<wnid>/*.JPEG`` with either
``val/<wnid>/*.JPEG`` (torchvision's ImageFolder layout) or a flat ``val/*.JPEG`` and a label
file: Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with the wnid first in
the prediction string) or a text list of ``file wnid`` lines (extra columns ignored), found
beside ``train/``, in ``val/`` or at the top of ``root``, or given as the ``val_labels`` option.

The val split is augkd's test split (ImageNet's test labels are not public). Classes are WordNet
ids in sorted order; the ``classes`` option keeps a subset, e.g. ``classes=imagenet100`` (the
CMC list, :mod:`augkd.data.imagenet100`) or a file of one wnid per line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from augkd.data.archive import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_MEMBER_BYTES,
    FileTree,
    file_sha256,
    read_tree,
    source_key,
    split_prefix,
)
from augkd.data.dataset import DATASETS, Dataset, positive_int_option
from augkd.data.decode import BAD_IMAGE_POLICIES, is_ignored_name, is_image_name
from augkd.data.imagenet100 import IMAGENET100
from augkd.data.stored import Listing, build_stored, check_size

#: Class lists known by name to the ``classes`` option.
CLASS_LISTS: dict[str, tuple[str, ...]] = {"imagenet100": IMAGENET100}
#: Label files looked for beside ``train/`` or inside ``val/`` when ``val/`` is flat.
VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt", "val_labels.csv")


# ---------------------------------------------------------------------------------- class subset


def read_class_list(value: str | Path) -> list[str]:
    """The class names of the ``classes`` option: a name of :data:`CLASS_LISTS`, or a text file
    of one class per line (blank lines and ``#`` comments skipped); duplicates are refused."""
    if isinstance(value, str) and value in CLASS_LISTS:
        names = list(CLASS_LISTS[value])
        where = f"class list {value!r}"
    else:
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"dataset option classes={str(value)!r} is neither a known class list "
                f"({', '.join(CLASS_LISTS)}) nor a file of one class name per line"
            )
        names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        names = [n for n in names if n]
        where = f"class list {path}"
    if not names:
        raise ValueError(f"{where} names no class")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{where} names class {n!r} twice")
        seen.add(n)
    return names


def choose_classes(found: list[str], subset: list[str] | None, source: str) -> list[str]:
    """The sorted classes kept: ``found`` or the ``subset`` of it (every one must be found)."""
    if subset is None:
        return sorted(found)
    missing = sorted(set(subset) - set(found))
    if missing:
        raise ValueError(f"{source} has no class {', '.join(missing[:5])}"
                         f"{f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''} "
                         f"of the class list; it has {len(found)} classes, e.g. "
                         f"{', '.join(sorted(found)[:3])}")
    return sorted(subset)


# ---------------------------------------------------------------------------------- layouts


def _prefix_of(tree: FileTree, marker: str) -> str:
    """The folder (``""`` or ``"a/b/"``) of the shallowest file or folder named ``marker``."""
    hits = [p for p in list(tree.files) + list(tree.dirs) if PurePosixPath(p).name == marker]
    if not hits:
        return "?"
    best = min(hits, key=lambda p: p.count("/"))
    parent = str(PurePosixPath(best).parent)
    return "" if parent == "." else f"{parent}/"


def _images_under(tree: FileTree, folder: str) -> list[str]:
    """Sorted image paths anywhere below ``folder/``; a file that is neither an image nor an
    ignorable leftover (annotation table, Thumbs.db) is refused by name."""
    found = []
    for path in tree.files:
        if not path.startswith(f"{folder}/"):
            continue
        if is_image_name(path):
            found.append(path)
        elif not is_ignored_name(path):
            raise ValueError(f"{tree.describe(path)} is not an image (expected "
                             ".JPEG/.jpg/.png... files, or annotation tables)")
    return sorted(found)


def _per_class(tree: FileTree, folder: str, kept: set[str] | None = None,
               image_dir: str = "") -> dict[str, list[str]]:
    """``{class: sorted images}`` of ``folder/<class>/[image_dir/]...``; images lying directly
    in ``folder/`` are refused, classes not in ``kept`` (when given) skipped."""
    classes: dict[str, list[str]] = {}
    for path in _images_under(tree, folder):
        inner = path[len(folder) + 1:]
        if "/" not in inner:
            raise ValueError(f"{tree.describe(path)} lies directly in {folder}/; images must "
                             f"sit in {folder}/<class>/ folders")
        name = inner.split("/", 1)[0]
        if image_dir and not inner.startswith(f"{name}/{image_dir}/"):
            raise ValueError(f"{tree.describe(path)} is not in {folder}/{name}/{image_dir}/, "
                             "where this layout keeps its images")
        if kept is None or name in kept:
            classes.setdefault(name, []).append(path)
    return classes


def _read_text(tree: FileTree, path: str) -> str:
    try:
        return tree.read(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{tree.describe(path)} is not UTF-8 text: {exc}") from exc


def _stem(name: str) -> str:
    """A file name without folders and without its image extension."""
    base = PurePosixPath(name).name
    return base.rsplit(".", 1)[0] if is_image_name(base) else base


def parse_label_table(text: str, where: str) -> dict[str, str]:
    """``{file stem: wnid}`` from a validation label file (formats in the module docstring).

    Raises:
        ValueError: an unknown format (e.g. the devkit's class-number list, which needs the
            devkit's own id mapping), a short line, or a file listed twice; naming the line.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{where} is empty")
    table: dict[str, str] = {}
    if lines[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        rows = csv.reader(io.StringIO("\n".join(lines[1:])))
        pairs = []
        for number, row in enumerate(rows, start=2):
            if len(row) < 2 or not row[1].split():
                raise ValueError(f"{where}, line {number}: expected 'ImageId,wnid x y x y ...', "
                                 f"got {','.join(row)!r}")
            pairs.append((number, row[0].strip(), row[1].split()[0]))
    else:
        if lines[0].strip().isdigit():
            raise ValueError(
                f"{where} lists class numbers (the ILSVRC devkit's ground truth), which need "
                "the devkit's own number-to-wnid table; give LOC_val_solution.csv or a list of "
                "'file wnid' lines instead (docs/data.md)"
            )
        pairs = []
        for number, line in enumerate(lines, start=1):
            cols = line.replace(",", " ").split()
            if len(cols) < 2:
                raise ValueError(f"{where}, line {number}: expected 'file wnid', got {line!r}")
            pairs.append((number, cols[0], cols[1]))
    for number, name, wnid in pairs:
        key = _stem(name)
        if key in table:
            raise ValueError(f"{where}, line {number}: {name} is listed twice")
        table[key] = wnid
    return table


def _labelled(classes: list[str], per_class: dict[str, list[str]], split: str,
              files: dict, labels: dict) -> None:
    index = {c: k for k, c in enumerate(classes)}
    files[split] = [p for c in classes for p in per_class.get(c, [])]
    labels[split] = [index[c] for c in classes for _ in per_class.get(c, [])]


def _flat_val(tree: FileTree, images: list[str], table: dict[str, str], where: str,
              known: set[str], kept: set[str]) -> dict[str, list[str]]:
    """``{wnid: images}`` of a flat val folder labelled by ``table``."""
    per_class: dict[str, list[str]] = {}
    stems = set()
    for path in images:
        stem = _stem(path)
        stems.add(stem)
        wnid = table.get(stem)
        if wnid is None:
            raise ValueError(f"{tree.describe(path)} has no label in {where}")
        if wnid not in known:
            raise ValueError(f"{where} labels {PurePosixPath(path).name} {wnid!r}, which is "
                             "not a class of the training split")
        if wnid in kept:
            per_class.setdefault(wnid, []).append(path)
    unseen = sorted(set(table) - stems)
    if unseen:
        raise ValueError(f"{where} lists {len(unseen)} image(s) that are not in the val folder, "
                         f"e.g. {unseen[0]}")
    return per_class


def list_tiny_imagenet(tree: FileTree, subset: list[str] | None) -> Listing:
    """The official Tiny ImageNet layout (module docstring); ``test/`` is not read."""
    prefix = _prefix_of(tree, "wnids.txt")
    if prefix == "?" or f"{prefix}wnids.txt" not in tree.files:
        raise ValueError(f"{tree.source} is not a Tiny ImageNet release: no wnids.txt (expected "
                         "wnids.txt, train/<wnid>/images/ and val/val_annotations.txt)")
    wnids = [w.strip() for w in _read_text(tree, f"{prefix}wnids.txt").splitlines() if w.strip()]
    classes = choose_classes(wnids, subset, tree.describe(f"{prefix}wnids.txt"))
    kept = set(classes)
    train = _per_class(tree, f"{prefix}train", image_dir="images")
    strangers = sorted(set(train) - set(wnids))
    if strangers:
        raise ValueError(f"{tree.describe(f'{prefix}train/{strangers[0]}')} is a class folder "
                         f"that wnids.txt does not list")
    empty = [w for w in classes if w not in train]
    if empty:
        raise ValueError(f"{tree.describe(f'{prefix}train/{empty[0]}/images')} holds no image")
    notes = f"{prefix}val/val_annotations.txt"
    if notes not in tree.files:
        raise ValueError(f"{tree.describe(notes)} does not exist; it labels the val images")
    table = parse_label_table(_read_text(tree, notes), tree.describe(notes))
    val_images = _images_under(tree, f"{prefix}val")
    val = _flat_val(tree, val_images, table, tree.describe(notes), set(wnids), kept)
    files: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    _labelled(classes, {w: train[w] for w in classes}, "train", files, labels)
    _labelled(classes, val, "test", files, labels)
    return Listing(tree, classes, files, labels)


def _find_val_labels(tree: FileTree, prefix: str) -> str:
    # beside train/, in val/, or at the top of root (Kaggle's download keeps the file there,
    # above ILSVRC/Data/CLS-LOC/train)
    for folder in dict.fromkeys((prefix, f"{prefix}val/", "")):
        for name in VAL_LABEL_FILES:
            if f"{folder}{name}" in tree.files:
                return f"{folder}{name}"
    raise ValueError(
        f"{tree.describe(f'{prefix}val')} holds images without class folders and no label file "
        f"({' or '.join(VAL_LABEL_FILES)} beside train/, in val/ or at the top of the root); "
        "give one with the "
        "dataset option val_labels=FILE, or sort val/ into val/<wnid>/ folders"
    )


def _imagenet_prefix(tree: FileTree) -> str:
    """The folder holding ``train/`` and ``val/``: the shallowest pair whose ``train/`` holds
    images (Kaggle's download also has ``ILSVRC/Annotations/CLS-LOC/{train,val}`` of XML)."""
    pairs = sorted((d.count("/"), d) for d in tree.dirs
                   if PurePosixPath(d).name == "train"
                   and f"{d[:-len('train')]}val" in tree.dirs)
    with_images = {p.split("/train/", 1)[0] if not p.startswith("train/") else ""
                   for p in tree.files if "train/" in p and is_image_name(p)}
    for _, folder in pairs:
        prefix = folder[:-len("train")]
        if prefix.rstrip("/") in with_images:
            return prefix
    raise ValueError(f"{tree.source} must hold train/<wnid>/ image folders and a val/ folder "
                     "beside it (anywhere below the root)")


def list_imagenet(tree: FileTree, subset: list[str] | None,
                  val_labels: Path | None = None) -> Listing:
    """ImageNet's ``train/<wnid>/`` with a foldered or a flat, labelled ``val/``."""
    prefix = _imagenet_prefix(tree)
    train = _per_class(tree, f"{prefix}train")
    if not train:
        raise ValueError(f"{tree.describe(f'{prefix}train')} holds no class folder of images")
    classes = choose_classes(list(train), subset, tree.describe(f"{prefix}train"))
    kept = set(classes)
    val_images = _images_under(tree, f"{prefix}val")
    flat = [p for p in val_images if "/" not in p[len(prefix) + 4:]]
    if flat and len(flat) != len(val_images):
        nested = next(p for p in val_images if p not in set(flat))
        raise ValueError(f"{tree.describe(f'{prefix}val')} mixes images in class folders "
                         f"({tree.describe(nested)}) with images directly in it "
                         f"({tree.describe(flat[0])}); use one layout")
    if flat:
        if val_labels is not None:
            where, text = str(val_labels), val_labels.read_text(encoding="utf-8-sig")
        else:
            found = _find_val_labels(tree, prefix)
            where, text = tree.describe(found), _read_text(tree, found)
        val = _flat_val(tree, flat, parse_label_table(text, where), where, set(train), kept)
    else:
        val = _per_class(tree, f"{prefix}val", kept)
        strangers = sorted(set(_per_class(tree, f"{prefix}val")) - set(train))
        if strangers:
            raise ValueError(f"{tree.describe(f'{prefix}val/{strangers[0]}')} is a class "
                             "that train/ does not have")
    files: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    _labelled(classes, train, "train", files, labels)
    _labelled(classes, val, "test", files, labels)
    if not files["test"]:
        raise ValueError(f"{tree.describe(f'{prefix}val')} holds no image of the chosen classes")
    return Listing(tree, classes, files, labels)


# ---------------------------------------------------------------------------------- loaders


def check_common(size: object, bad_images: object, workers: object, max_member_bytes: object,
                 max_image_pixels: object) -> None:
    """Refuse bad values of the options the stored datasets share, before any data is read."""
    check_size(size)
    if bad_images not in BAD_IMAGE_POLICIES:
        raise ValueError(f"dataset option bad_images must be one of "
                         f"{', '.join(BAD_IMAGE_POLICIES)}, got {bad_images!r}")
    if workers is not None:
        positive_int_option("workers", workers)
    positive_int_option("max_member_bytes", max_member_bytes)
    positive_int_option("max_image_pixels", max_image_pixels)


def load_stored_layout(name: str, root: Path | None, lister, *, size: int,
                       classes: str | None, bad_images: str, workers: int | None, cache: bool,
                       cache_dir: str | Path | None, max_member_bytes: int,
                       max_image_pixels: int, extra_key: dict | None = None) -> Dataset:
    """Shared by the loaders: check options, key the cache, list and decode on a miss."""
    check_common(size, bad_images, workers, max_member_bytes, max_image_pixels)
    if root is None:
        raise ValueError(f"dataset {name!r} needs root, its folder or archive")
    if not root.exists():
        raise FileNotFoundError(f"{name} folder or archive {root} does not exist")
    subset = read_class_list(classes) if classes is not None else None
    kind, digest = source_key(root)
    key = {"source": [kind, digest], "classes": subset, **(extra_key or {})}
    options: dict = {"size": size}
    if classes is not None:
        options["classes"] = str(classes)
    if bad_images != "error":
        options["bad_images"] = bad_images
    return build_stored(
        name, root, key, lambda: lister(read_tree(root, max_member_bytes), subset), size=size,
        options=options, bad_images=bad_images, workers=workers, cache=cache,
        cache_dir=cache_dir, max_image_pixels=max_image_pixels,
    )


@DATASETS.register("tinyimagenet")
def load_tiny_imagenet(
    root: Path | None,
    *,
    size: int = 64,
    classes: str | None = None,
    bad_images: str = "error",
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Dataset:
    """Tiny ImageNet (200 classes, 100,000 train / 10,000 val images of 64 x 64 px).

    Args:
        root: the ``tiny-imagenet-200`` folder, a folder holding it, or its .zip.
        size: the stored side in px (64: the images as released).
        classes: keep only these classes: a file of one wnid per line, or a known list name.
        bad_images: ``"error"`` (default) stops at an unreadable image, naming it; ``"skip"``
            leaves such images out, counted in a warning and the cache's manifest.
        workers: decoding processes (default: every core).
        cache: keep the decoded arrays in a memory-mapped cache and reuse them.
        cache_dir: the cache root (default ``$AUGKD_CACHE`` or ``~/.cache/augkd``).
        max_member_bytes, max_image_pixels: as for ``imagefolder``.
    """
    return load_stored_layout("tinyimagenet", root, list_tiny_imagenet, size=size,
                              classes=classes, bad_images=bad_images, workers=workers,
                              cache=cache, cache_dir=cache_dir, max_member_bytes=max_member_bytes,
                              max_image_pixels=max_image_pixels)


@DATASETS.register("imagenet")
def load_imagenet(
    root: Path | None,
    *,
    size: int | None = None,
    classes: str | None = None,
    val_labels: str | Path | None = None,
    bad_images: str = "error",
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Dataset:
    """ImageNet-1K (or a subset by ``classes``, e.g. ``imagenet100``) at a stored resolution.

    Args:
        root: the folder holding ``train/`` and ``val/`` (an archive works too, but is read
            into memory whole: extract ImageNet-1K first).
        size: the stored side in px, required: it sets the disk the cache takes (docs/data.md:
            about 48 GB at 112 px, 98 GB at 160 px, 193 GB at 224 px for ImageNet-1K).
        val_labels: the label file of a flat ``val/`` folder, when it is not found beside
            ``train/`` or in ``val/``.
        Others: as for :func:`load_tiny_imagenet`.
    """
    if size is None:
        raise ValueError("dataset 'imagenet' needs the option size=PX, the stored side (e.g. "
                         "64, 112 or 224; docs/data.md lists the disk each takes)")
    labels_path = None
    extra: dict = {}
    if val_labels is not None:
        labels_path = Path(val_labels).expanduser()
        if not labels_path.is_file():
            raise FileNotFoundError(f"dataset option val_labels={str(val_labels)!r}: no such file")
        extra["val_labels"] = file_sha256(labels_path)
    return load_stored_layout(
        "imagenet", root, lambda tree, subset: list_imagenet(tree, subset, labels_path),
        size=size, classes=classes, bad_images=bad_images, workers=workers, cache=cache,
        cache_dir=cache_dir, max_member_bytes=max_member_bytes,
        max_image_pixels=max_image_pixels, extra_key=extra,
    )


def list_image_folder(tree: FileTree, subset: list[str] | None) -> Listing:
    """``train/<class>/*`` and ``test/<class>/*`` (optionally in one wrapping folder), for the
    ``imagefolder`` dataset with a ``size``: images of any size, stray files skipped by rule."""

    prefix = split_prefix(tree)
    train = _per_class(tree, f"{prefix}train")
    test = _per_class(tree, f"{prefix}test")
    if set(train) != set(test):
        raise ValueError(
            f"{tree.source}: train/ and test/ hold different classes; only in train: "
            f"{', '.join(sorted(set(train) - set(test))) or 'none'}; only in test: "
            f"{', '.join(sorted(set(test) - set(train))) or 'none'}"
        )
    classes = choose_classes(list(train), subset, tree.describe(f"{prefix}train"))
    files: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    _labelled(classes, train, "train", files, labels)
    _labelled(classes, test, "test", files, labels)
    return Listing(tree, classes, files, labels)
