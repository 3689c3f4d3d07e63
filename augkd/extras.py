"""Optional dependencies (``pip install "augkd[EXTRA]"``), imported only when a feature asks.

TensorBoard logging needs the ``tensorboard`` extra, cluster sweeps the ``slurm`` extra
(submitit). A missing one stops the command with one line naming the pip command, before any
work starts, rather than with an ImportError deep inside a run.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command."""


def require(module: str, *, package: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` (shipped by ``package``, of the augkd extra ``extra``) for ``feature``.

    Raises:
        MissingExtraError: the import failed; the message says ``pip install "augkd[extra]"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{feature} needs {package}, which is not importable ({err}); install it with: "
            f'pip install "augkd[{extra}]"'
        ) from None
