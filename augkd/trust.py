"""Whose code may run: the trust model of specs read back from folders.

A ``module.path:Class`` DA spec imports ``module.path``, which runs its code. What a user typed
on the command line, or wrote in a spec or config file they passed (``--config``, a sweep spec,
``tune.yaml`` via ``--config``), is theirs to import. A spec *read back from a folder* (a run's
``config.yaml`` or ``checkpoint.pt``, a tuning trial's config, a sweep's job folders) may come
from someone else: a downloaded run folder with an ``evil.py`` beside it would otherwise run
that file on ``--resume``. While such a file is read (:func:`reading_folder`), only augkd's own
DAs and the ``kornia:`` / ``albumentations:`` catalogs are built; a spec that imports any other
module is refused, naming the file, the spec and the opt-in ``--trust-folder``
(:func:`trust_folders`), which the commands that read folders accept.

Downloads follow the same rule: a folder's config never starts one (``dataset_options.download``
is dropped when a config is read back; ``--download`` on the command line asks again).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path

#: The command-line flag that trusts folders' specs to import their modules.
TRUST_FLAG = "--trust-folder"

#: The file whose specs are being read now (None: the user's own input).
_reading: contextvars.ContextVar[Path | None] = contextvars.ContextVar("augkd_reading_folder",
                                                                      default=None)
_trusted = False


class UntrustedFolderError(ValueError):
    """A spec read back from a folder names a module to import, and folders are not trusted."""


def trust_folders(trusted: bool = True) -> None:
    """Let (or stop letting) specs read back from folders import their modules (the
    ``--trust-folder`` flag)."""
    global _trusted
    _trusted = bool(trusted)


def folders_trusted() -> bool:
    """Whether ``--trust-folder`` was given to this process."""
    return _trusted


@contextlib.contextmanager
def reading_folder(path: str | Path) -> Iterator[None]:
    """Mark the specs built inside as read back from the file ``path`` (see the module doc)."""
    token = _reading.set(Path(path))
    try:
        yield
    finally:
        _reading.reset(token)


def check_import(spec: str, module: str) -> None:
    """Refuse to import ``module`` for ``spec`` when the spec was read back from a folder.

    augkd's own modules are always allowed (they are installed code, not the folder's).

    Raises:
        UntrustedFolderError: names the file, the spec and :data:`TRUST_FLAG`.
    """
    source = _reading.get()
    if source is None or _trusted or module == "augkd" or module.startswith("augkd."):
        return
    raise UntrustedFolderError(
        f"{source}: the DA spec {spec!r} would import module {module!r}; a spec read back from "
        f"a folder may name augkd's DAs and the kornia:/albumentations: catalogs only, so code "
        f"beside a downloaded folder never runs. If you trust this folder, pass {TRUST_FLAG} "
        f"(docs/augmentations.md, 'Whose code runs')"
    )
