"""Read a folder tree from a directory or an archive (.tar, .tar.gz/.tgz, .tar.xz, .tar.bz2, .zip).

The result is a :class:`FileTree`: every regular file by its relative POSIX path, with its bytes
(archives) or its path on disk (directories), and every folder, so empty folders stay visible.
Hidden entries (a component starting with ``.``, or ``__MACOSX``) are left out.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".zip")

# What a damaged archive raises somewhere inside tarfile/zipfile and their decompressors.
_CORRUPT_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    lzma.LZMAError,
    zlib.error,
    gzip.BadGzipFile,
    EOFError,
)


@dataclass
class FileTree:
    """The files and folders of a directory or archive.

    Attributes:
        source: the directory or archive read.
        files: relative POSIX path -> file bytes (archive) or the file's path (directory).
        dirs: relative POSIX paths of all folders, including those only implied by a file.
    """

    source: Path
    files: dict[str, bytes | Path] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def describe(self, relative: str) -> str:
        """How to name the entry ``relative`` in a message: a full path or ``archive:member``."""
        if self.source.is_dir():
            return str(self.source / relative)
        return f"{self.source}:{relative}"

    def read(self, relative: str) -> bytes:
        """The bytes of the file ``relative``."""
        content = self.files[relative]
        return content if isinstance(content, bytes) else content.read_bytes()


def is_archive(path: Path) -> bool:
    """Whether ``path``'s name ends with a supported archive suffix."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _clean(name: str) -> str | None:
    """``name`` as a relative POSIX path, or None for hidden, unsafe or empty names."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if not parts or any(p == ".." or p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return "/".join(parts)


def _add_file(tree: FileTree, name: str, content: bytes | Path) -> None:
    tree.files[name] = content
    parent = PurePosixPath(name).parent
    while str(parent) != ".":
        tree.dirs.add(str(parent))
        parent = parent.parent


def _walk(root: Path):
    """Walk ``root`` following symlinks safely: yields ``("dir" | "file", relative, full)``.

    A symlink may point anywhere inside the root, but every real folder and file is reached at
    most once: a link that leaves the root, forms a loop, or makes a folder or image appear a
    second time (e.g. a class folder linked into another class, which would give its images a
    second label) is refused with an error naming it.
    """
    root_real = root.resolve()
    seen_dirs: dict[Path, Path] = {root_real: root}
    seen_files: dict[Path, Path] = {}

    def check(path: Path, kind: str, seen: dict[Path, Path]) -> None:
        real = path.resolve()
        if path.is_symlink() and not real.is_relative_to(root_real):
            raise ValueError(f"symlink {path} points to {real}, outside the dataset root {root}")
        if real in seen:
            reason = ("a symlink loop" if kind == "folder" and path.is_symlink()
                      and real in path.parents or real == root_real else "a second path")
            raise ValueError(
                f"{path} is {reason} to the {kind} {seen[real]}: each {kind} of a dataset "
                "may be reached once (a linked class folder would give its images two labels)"
            )
        seen[real] = path

    for folder, subdirs, filenames in os.walk(root, followlinks=True):
        subdirs.sort()
        base = Path(folder)
        relative = base.relative_to(root).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        # A plain file's real path is its folder's real path and its name: one resolve per
        # folder, not per file (ImageNet's 1.3 million files), with the same checks.
        base_real = base.resolve()
        for sub in list(subdirs):
            full = base / sub
            name = _clean(prefix + sub)
            if name is None:
                subdirs.remove(sub)  # hidden folders are never entered
                continue
            check(full, "folder", seen_dirs)
            yield "dir", name, full
        for filename in sorted(filenames):
            full = base / filename
            name = _clean(prefix + filename)
            if name is None:
                continue
            if not os.path.islink(full):
                real = base_real / filename
                if real in seen_files:
                    raise ValueError(
                        f"{full} is a second path to the file {seen_files[real]}: each file "
                        "of a dataset may be reached once (a linked class folder would give "
                        "its images two labels)"
                    )
                seen_files[real] = full
                yield "file", name, full
                continue
            if not full.exists():
                raise ValueError(f"symlink {full} points to {os.readlink(full)}, which does "
                                 "not exist")
            check(full, "file", seen_files)
            yield "file", name, full


#: Default cap on one file of a dataset (``max_member_bytes``): far above any image of the
#: benchmark, far below what would exhaust memory. Settable per load.
DEFAULT_MAX_MEMBER_BYTES = 64 * 2**20


def _check_size(where: str, size: int, cap: int) -> None:
    if size > cap:
        raise ValueError(f"{where} is {size:,} bytes, more than the cap of {cap:,} bytes per "
                         "file (raise it with the max_member_bytes dataset option)")


def _read_directory(root: Path, cap: int = DEFAULT_MAX_MEMBER_BYTES) -> FileTree:
    tree = FileTree(root)
    for kind, name, full in _walk(root):
        if kind == "dir":
            tree.dirs.add(name)
        else:
            _check_size(str(full), full.stat().st_size, cap)
            _add_file(tree, name, full)
    return tree


# Magic bytes of the compressions a tar may come in, and how to undo each on whole bytes. Each
# decompress() raises (EOFError, LZMAError, ValueError, OSError...) when the end-of-stream marker
# is missing or a checksum fails, instead of returning the part before the cut.
_TAR_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip", gzip.decompress),
    (b"\xfd7zXZ\x00", "xz", lzma.decompress),
    (b"BZh", "bzip2", bz2.decompress),
)
_BLOCK = tarfile.BLOCKSIZE  # 512: a tar is headers and data padded to 512-byte blocks
_END_OF_ARCHIVE = bytes(2 * _BLOCK)  # two zero blocks end every tar


def _tar_bytes(path: Path) -> bytes:
    """The uncompressed tar in ``path``, its compression detected from its first bytes."""
    data = path.read_bytes()
    for magic, kind, decompress in _TAR_COMPRESSIONS:
        if data.startswith(magic):
            try:
                return decompress(data)
            # gzip: EOFError, BadGzipFile (an OSError), zlib.error; xz: LZMAError;
            # bzip2: ValueError (cut) or OSError (damaged).
            except (EOFError, OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
                raise EOFError(f"{kind} data: {exc}") from exc
    return data  # no known compression: a plain tar, or garbage that tarfile refuses


def _read_tar(path: Path, cap: int = DEFAULT_MAX_MEMBER_BYTES) -> FileTree:
    tree = FileTree(path)
    raw = _tar_bytes(path)
    view = memoryview(raw)
    size = len(raw)
    # Random access over bytes in memory: each member's data is a slice of ``raw``, so the
    # offsets below can be checked against the real length (stream mode cannot tell a tar cut
    # at a block boundary from a shorter tar).
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        for member in archive:
            if member.isreg():
                _check_size(f"{path}:{member.name}", member.size, cap)
            if member.isreg() and not member.issparse():
                end = member.offset_data + member.size
                if end > size:
                    raise tarfile.ReadError(
                        f"member {member.name} ends early ({max(0, size - member.offset_data)} of "
                        f"{member.size} bytes)"
                    )
            name = _clean(member.name)
            if name is None:
                continue
            if member.isdir():
                tree.dirs.add(name)
            elif member.isfile():
                if member.issparse():
                    handle = archive.extractfile(member)
                    assert handle is not None  # a regular file always has a data stream
                    data = handle.read()
                    if len(data) != member.size:
                        raise tarfile.ReadError(f"member {member.name} ends early")
                else:
                    data = bytes(view[member.offset_data : member.offset_data + member.size])
                _add_file(tree, name, data)
        # tarfile stops quietly at a missing, short or damaged header after the first one; only
        # the end-of-archive marker right after the last member's padded data shows the end.
        end = archive.offset
    if view[end : end + len(_END_OF_ARCHIVE)] != _END_OF_ARCHIVE:
        raise tarfile.ReadError(
            f"no end-of-archive marker (two zero blocks) at byte {end} of {size}: the data "
            f"ends or is damaged after {len(tree.files)} files"
        )
    return tree


def _read_zip(path: Path, cap: int = DEFAULT_MAX_MEMBER_BYTES) -> FileTree:
    tree = FileTree(path)
    # A cut zip has lost its central directory (at the end): ZipFile raises BadZipFile. Reading
    # a member checks its CRC-32 and length (BadZipFile) and decompresses it (zlib.error,
    # LZMAError, EOFError; bz2's OSError or ValueError, turned into BadZipFile here).
    try:
        archive = zipfile.ZipFile(path)
    except ValueError as exc:  # e.g. a name flagged UTF-8 that is not
        raise zipfile.BadZipFile(f"central directory: {exc}") from exc
    with archive:
        for info in archive.infolist():
            name = _clean(info.filename)
            if name is None:
                continue
            if info.is_dir():
                tree.dirs.add(name)
                continue
            _check_size(f"{path}:{info.filename}", info.file_size, cap)
            try:
                data = archive.read(info)
            except (OSError, ValueError) as exc:
                raise zipfile.BadZipFile(f"member {info.filename}: {exc}") from exc
            _add_file(tree, name, data)
    return tree


def read_tree(path: Path, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> FileTree:
    """Read every file of the directory or archive ``path``.

    Args:
        max_member_bytes: the largest file accepted; a bigger one (by its size on disk or in
            the archive's header) is refused before it is read into memory.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a file of an unsupported kind, a truncated/corrupt archive, a
            file over ``max_member_bytes``, or a symlink that leaves the root or loops.
    """
    if not path.exists():
        raise FileNotFoundError(f"image folder or archive {path} does not exist")
    if path.is_dir():
        return _read_directory(path, max_member_bytes)
    if not is_archive(path):
        raise ValueError(
            f"{path} is neither a directory nor an archive ending with "
            f"{', '.join(ARCHIVE_SUFFIXES)}"
        )
    reader = _read_zip if path.name.lower().endswith(".zip") else _read_tar
    try:
        return reader(path, max_member_bytes)
    except _CORRUPT_ERRORS as exc:
        raise ValueError(f"cannot read archive {path}: truncated or corrupt ({exc})") from exc


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def directory_fingerprint(root: Path) -> str:
    """A sha256 (hex) of every visible file's relative path, size and modification time.

    Cheap (no file is read) and changes whenever a file is added, removed, resized or touched.
    """
    digest = hashlib.sha256()
    for kind, name, full in _walk(root):
        if kind == "file":
            stat = full.stat()
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


#: The two splits of an image-folder tree.
SPLITS = ("train", "test")


def split_prefix(tree: FileTree) -> str:
    """The folder that holds ``train/`` and ``test/``: ``""`` or a single wrapping folder."""
    top = {PurePosixPath(d).parts[0] for d in tree.dirs}
    if set(SPLITS) <= top:
        return ""
    top_files = [name for name in tree.files if "/" not in name]
    if len(top) == 1 and not top_files:
        (wrapper,) = top
        if {f"{wrapper}/{split}" for split in SPLITS} <= tree.dirs:
            return f"{wrapper}/"
    found = ", ".join(sorted(top | set(top_files))) or "nothing"
    missing = [f"{s}/" for s in SPLITS if s not in top]
    raise ValueError(
        f"{tree.source} must hold train/ and test/ folders (optionally inside one top-level "
        f"folder); missing {' and '.join(missing) or 'train/ and test/'}, found: {found}"
    )


#: Default cap on one image's declared pixel count (``max_image_pixels``), checked from its
#: header before it is decoded.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


def source_key(root: Path) -> tuple[str, str]:
    """What keys ``root``'s cache file: ``("archive", sha256 of the file)`` for an archive,
    ``("dir", directory_fingerprint(root))`` for a directory."""
    if root.is_dir():
        return "dir", directory_fingerprint(root)
    return "archive", file_sha256(root)
