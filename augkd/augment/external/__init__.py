"""DAs from kornia, albumentations and user code, named by spec strings like the built-in ones.

An external spec is ``source:body``; :func:`augkd.augment.create` sends every spec of that
shape here, and the result follows the same contract as a built-in DA (uint8 ``[B, C, H, W]``
in and out, on the images' device, seeded by the ``torch.Generator`` of the call)::

    kornia:RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0)
    albumentations(workers=4):GridDistortion(p=1.0) | HorizontalFlip
    my_package.my_module:MyAugmentation(strength=3)

The guide (sources, values, seeding, per-batch mode, and the template of your own DA, which the
tests run) is docs/augmentations.md. The modules:

- :mod:`~augkd.augment.external.grammar`: the spec syntax, parsed with ``ast`` (nothing is
  evaluated) and written back canonically;
- :mod:`~augkd.augment.external.kornia_da`, :mod:`~augkd.augment.external.albumentations_da`:
  the two library adapters (:mod:`~augkd.augment.external.base`: what they share);
- :mod:`~augkd.augment.external.user`: ``module.path:Class`` (imported only from a spec given
  on the command line or from a trusted folder, :mod:`augkd.trust`);
- :mod:`~augkd.augment.external.factory`: :func:`create_external` and
  :func:`external_spec_of`.
"""

from augkd.augment.external.albumentations_da import AlbumentationsAugmentation
from augkd.augment.external.base import LibraryAugmentation
from augkd.augment.external.factory import create_external, external_spec_of
from augkd.augment.external.grammar import (
    EXTERNAL_FORMS,
    PIPE,
    ExternalSpec,
    Stage,
    format_literal,
    is_external_spec,
    parse_external_spec,
)
from augkd.augment.external.kornia_da import KorniaAugmentation, seeded_global_rng

__all__ = [
    "EXTERNAL_FORMS",
    "PIPE",
    "AlbumentationsAugmentation",
    "ExternalSpec",
    "KorniaAugmentation",
    "LibraryAugmentation",
    "Stage",
    "create_external",
    "external_spec_of",
    "format_literal",
    "is_external_spec",
    "parse_external_spec",
    "seeded_global_rng",
]
