"""DAs from kornia, albumentations and user code, named by spec strings like the built-in ones.

An external spec is ``source:body``; :func:`augkd.augment.create` sends every spec of that
shape here, and the result follows the same contract as a built-in DA (uint8 ``[B, C, H, W]``
in and out, on the images' device, seeded by the ``torch.Generator`` of the call)::

    kornia:RandomGaussianNoise(std=0.05, p=1.0)
    kornia:RandomGaussianNoise(std=0.05, p=1.0) | RandomAffine(degrees=15, p=1.0)
    kornia:RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0)
    albumentations:GridDistortion(p=1.0)
    albumentations(workers=4):GridDistortion(p=1.0) | HorizontalFlip
    my_package.my_module:MyAugmentation(strength=3)

- ``kornia:`` names classes of ``kornia.augmentation`` (dotted names reach its submodules,
  e.g. ``kornia:auto.AutoAugment``). ``|`` chains transforms into a pipeline; it is not ``+``,
  which is part of built-in names (``crop+flip`` is one DA, not two).
- ``albumentations:`` names classes of ``albumentations`` (``A.HorizontalFlip``), chained the
  same way into one ``A.Compose``. The only option, ``workers`` (default 0: in the calling
  thread), spreads the images of a batch over that many threads; results do not depend on it.
- ``module.path:Name`` imports ``Name`` from ``module.path`` (it must be importable, i.e. on
  ``sys.path``) and builds it with the keyword values. It must be a subclass of
  :class:`augkd.augment.base.Augmentation`, written like the built-in DAs (template below).
  Its canonical spec names the module that defines it (``cls.__module__``), so a class
  re-exported by a package is written back under its defining module.

Values are keyword-only and parsed safely from Python literal syntax (``ast``, nothing is
evaluated): numbers, quoted strings, tuples and lists, plus augkd's ``true``/``false``/``none``
and bare words as strings (``padding_mode=reflection``). :func:`spec_of` writes the canonical
form back: transforms joined by `` | ``, keyword values in the order given (nothing dropped
for kornia and albumentations; defaults dropped for user classes, as for built-ins), floats
with ``repr``, bools as ``true``/``false``, strings bare where they are plain words.

Randomness and seeding:

- kornia runs batched on the images' device, drawing its per-image parameters from torch's
  *global* RNG. :meth:`KorniaAugmentation.sample` draws one seed from the call's generator;
  :meth:`KorniaAugmentation.apply` runs kornia inside ``torch.random.fork_rng`` (the CPU
  stream, where kornia draws parameters, and the images' CUDA device, where some transforms
  draw noise) after seeding both with it, so the same generator state gives the same output
  and the global streams are left exactly as they were. Reading the seed is one host sync per
  call (kornia itself syncs too). Images go to float ``[0, 1]`` and come back as
  ``round(255 x)`` clamped to ``[0, 255]``.
- albumentations runs per image on the CPU (HWC uint8 numpy; grayscale stays ``H x W x 1``):
  :meth:`AlbumentationsAugmentation.sample` draws one seed per image, and each image is
  transformed with a fresh ``numpy.random.Generator`` and ``random.Random`` from its seed
  (``Compose.set_random_state``), so outputs repeat, do not depend on ``workers`` or batch
  order, and numpy's and Python's global RNGs are not touched.

Per-batch mode (``create(spec, per_batch=True)``, the paper's once-per-batch parameters):
for kornia it sets ``same_on_batch=True`` on every transform (kornia then draws one set of
parameters for the batch; the canonical spec shows it), and fails for a transform without
that option. albumentations draws per image only, so it fails there; a user class gets
``per_batch`` if its ``__init__`` takes it, and fails otherwise.

A user DA, e.g. in ``my_package/my_module.py``::

    import torch
    from torch import Tensor

    from augkd.augment.base import Augmentation, AugmentOutput


    class MyAugmentation(Augmentation):
        \"\"\"Add one random brightness shift in [-strength, strength] to each image.\"\"\"

        def __init__(self, *, strength: int = 1, per_batch: bool = False) -> None:
            super().__init__(per_batch=per_batch)
            self.strength = strength  # spec_of reads each parameter back from its attribute

        def sample(self, shape: torch.Size, device: torch.device,
                   generator: torch.Generator | None) -> Tensor:
            n = 1 if self.per_batch else shape[0]
            shift = torch.randint(-self.strength, self.strength + 1, (n, 1, 1, 1),
                                  device=device, generator=generator)
            return shift.expand(shape[0], 1, 1, 1)  # int64 [B, 1, 1, 1]

        def apply(self, images: Tensor, params: Tensor) -> AugmentOutput:
            shifted = (images.to(torch.int16) + params).clamp(0, 255).to(torch.uint8)
            return AugmentOutput(images=shifted)

The contract, checked by :func:`create` where it can be: keyword-only ``__init__``
parameters are the spec's parameters (type hints are checked as for built-ins), each stored
as the attribute of the same name; ``sample`` draws only from the given generator;
``apply`` returns uint8 images of the input's shape and device (set ``mix``/``erased`` as a
mixing or erasing DA must, see :mod:`augkd.augment.base`). Do not also register the class:
its module path is its name.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import importlib
import inspect
import os
import random
import re
import types
import typing
from abc import abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from augkd.augment.base import Augmentation, AugmentOutput
from augkd.augment.geometric import like_input_format
from augkd.grammar import check_param, coerce_value, spec_parameters
from augkd.numbers import is_finite
from augkd.registry import UnknownNameError
from augkd.trust import check_import

#: The forms of external specs, listed after the registered names by ``list_augmentations``.
EXTERNAL_FORMS: tuple[str, ...] = (
    "kornia:<Class>(...)",
    "albumentations:<Class>(...)",
    "<module>:<Class>(...)",
)

#: Joins the transforms of a kornia or albumentations pipeline in a spec.
PIPE = "|"

#: Most threads an albumentations DA may use (a typo such as workers=4000 fails at parse time).
MAX_WORKERS = 256

_PREFIX_RE = re.compile(
    r"^\s*(?P<prefix>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\s*(?:\([^()]*\))?)\s*:(?P<body>.*)$",
    re.DOTALL,
)
_WORD_RE = re.compile(r"^[A-Za-z_]\w*$")
_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None}
_SEED_HIGH = 2**62  # seeds are int64 draws in [0, 2**62)


def is_external_spec(spec: object) -> bool:
    """Whether ``spec`` has the ``source:body`` shape of an external spec."""
    return isinstance(spec, str) and _PREFIX_RE.match(spec) is not None


# ------------------------------------------------------------------------------ spec syntax


@dataclasses.dataclass(frozen=True)
class Stage:
    """One named object of an external spec and its keyword values, in the order given.

    Also used for the prefix: ``albumentations(workers=4)`` is ``Stage("albumentations",
    {"workers": 4})``.
    """

    name: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        values = ", ".join(f"{k}={format_literal(v)}" for k, v in self.kwargs.items())
        return f"{self.name}({values})"


@dataclasses.dataclass(frozen=True)
class ExternalSpec:
    """A parsed external spec: ``source(options):stage | stage | ...``."""

    prefix: Stage
    stages: tuple[Stage, ...]

    def __str__(self) -> str:
        return f"{self.prefix}:{f' {PIPE} '.join(map(str, self.stages))}"

    def label(self, stage: Stage) -> str:
        """``kornia:RandomAffine``: how error messages name one stage."""
        return f"{self.prefix.name}:{stage.name}"


def parse_external_spec(spec: str) -> ExternalSpec:
    """Parse ``source(options):Name(key=value, ...) | Name ...`` (see the module docstring).

    Raises:
        ValueError: not that shape, positional arguments, a repeated key, or a value that is
            not a literal.
    """
    match = _PREFIX_RE.match(spec) if isinstance(spec, str) else None
    malformed = f"malformed augmentation spec {spec!r}; expected source:Name(key=value, ...)"
    if match is None:
        raise ValueError(malformed)
    prefix = _parse_stages(spec, match.group("prefix"))
    body = match.group("body").strip()
    if len(prefix) != 1 or not body:
        raise ValueError(malformed)
    return ExternalSpec(prefix[0], tuple(_parse_stages(spec, body)))


def _parse_stages(spec: str, text: str) -> list[Stage]:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"malformed augmentation spec {spec!r}: {text.strip()!r} is not "
            f"Name(key=value, ...) {PIPE} Name(...) with literal values"
        ) from None
    return [_stage(spec, node) for node in _split_pipe(tree)]


def _split_pipe(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _split_pipe(node.left) + _split_pipe(node.right)
    return [node]


def _stage(spec: str, node: ast.expr) -> Stage:
    if not isinstance(node, ast.Call):
        return Stage(_dotted(spec, node))
    name = _dotted(spec, node.func)
    if node.args or any(k.arg is None for k in node.keywords):
        raise ValueError(f"malformed augmentation spec {spec!r}: {name} takes key=value only")
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg in kwargs:
            raise ValueError(f"malformed augmentation spec {spec!r}: {keyword.arg!r} given twice")
        kwargs[keyword.arg] = _literal(spec, keyword.value)
    return Stage(name, kwargs)


def _dotted(spec: str, node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(spec, node.value)}.{node.attr}"
    raise ValueError(
        f"malformed augmentation spec {spec!r}: {ast.unparse(node)!r} is not a (dotted) name"
    )


def _literal(spec: str, node: ast.expr) -> Any:
    """The value of a literal node; bare words are strings, ``true``/``false``/``none`` too."""
    if isinstance(node, ast.Name):
        return _WORDS.get(node.id.lower(), node.id)
    if isinstance(node, ast.Tuple | ast.List):
        items = [_literal(spec, item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None  # not a literal: fall through to the message below
    else:
        if isinstance(value, str | bool) or is_finite(value):
            return value
    raise ValueError(
        f"malformed augmentation spec {spec!r}: {ast.unparse(node)!r} is not a literal "
        "(finite number, string, true/false/none, tuple or list)"
    )


def format_literal(value: Any) -> str:
    """The canonical spec text of a value: ``true``, ``none``, ``0.5``, ``reflect``, ``(1, 2)``."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        plain = _WORD_RE.match(value) and value.lower() not in _WORDS
        return value if plain else repr(value)
    if isinstance(value, tuple):
        items = ", ".join(map(format_literal, value))
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, list):
        return f"[{', '.join(map(format_literal, value))}]"
    return str(value)


# ---------------------------------------------------------------------------- create, spec_of


def create_external(spec: str, *, per_batch: bool | None = None) -> Augmentation:
    """Build the DA named by an external ``spec``; ``per_batch`` as in :func:`create`.

    Raises:
        ValueError: malformed spec, unknown library class, module or name (UnknownNameError,
            also a ValueError), bad parameters, an object that breaks the DA contract, or
            per-batch mode asked of a DA that draws per image only.
    """
    parsed = parse_external_spec(spec)
    adapter = _LIBRARIES.get(parsed.prefix.name)
    if adapter is not None:
        return adapter.from_spec(parsed, per_batch=per_batch)
    return _create_user(parsed, per_batch=per_batch)


def external_spec_of(aug: Augmentation) -> str:
    """The canonical spec of a kornia, albumentations or user DA (``spec_of`` comes here)."""
    if isinstance(aug, LibraryAugmentation):
        return str(aug.spec)
    cls = type(aug)
    if "<locals>" in cls.__qualname__:
        raise ValueError(
            f"{cls.__qualname__} has no spec: a user DA is named by module:Class, so it must "
            "be defined at the top level of an importable module"
        )
    kwargs = {}
    for key, param in spec_parameters(cls).items():
        if hasattr(aug, key):
            value = getattr(aug, key)
            if param.default is inspect.Parameter.empty or value != param.default:
                kwargs[key] = value
    return str(ExternalSpec(Stage(cls.__module__), (Stage(cls.__qualname__, kwargs),)))


def _resolve_attr(root: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def _check_kwargs(label: str, target: Any, kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming ``label`` for a keyword that ``target`` does not take.

    albumentations only warns about unknown arguments; a typo must stop the run instead."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to read: the call itself will complain
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    by_keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    allowed = [n for n, p in params.items() if p.kind in by_keyword]
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"{label}: unknown parameter {key!r}; allowed: "
                             f"{', '.join(allowed) or 'none'}")


def _construct(label: str, cls: type, kwargs: dict[str, Any]) -> Any:
    _check_kwargs(label, cls, kwargs)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label}: {err}") from err


def _unknown_name(label: str, name: str, where: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"{label}: no {name!r} in {where}{hint}")


# ------------------------------------------------------------------------ library adapters


class LibraryAugmentation(Augmentation):
    """What the kornia and albumentations adapters share: the parsed spec they were built from."""

    #: The spec source that names the library (``kornia``, ``albumentations``).
    library: ClassVar[str]

    def __init__(self, spec: ExternalSpec, *, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        self.spec = spec

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> LibraryAugmentation:
        """Build the DA of a parsed spec whose source is :attr:`library`."""

    def extra_repr(self) -> str:
        return repr(str(self.spec))

    @contextlib.contextmanager
    def _naming_the_spec(self) -> Iterator[None]:
        """Let a library's own error say which DA raised it (type unchanged: OOM stays OOM)."""
        try:
            yield
        except Exception as err:
            if str(self.spec) not in str(err):
                err.add_note(f"raised by the augmentation {str(self.spec)!r}")
            raise


def _import_library(label: str, module: str) -> types.ModuleType:
    if module == "albumentations":  # its import asks PyPI for a newer version, unless told not to
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{label}: specs of this kind need the {module.split('.')[0]} "
                         f"package ({err})") from err


@dataclasses.dataclass(frozen=True)
class KorniaParams:
    """Parameters of :class:`KorniaAugmentation`: ``seed`` int64 ``[]``, seeds kornia's draws."""

    seed: Tensor


class KorniaAugmentation(LibraryAugmentation):
    """A pipeline of ``kornia.augmentation`` transforms, batched on the images' device.

    Args:
        spec: the parsed ``kornia:`` spec; ``per_batch`` is True when every transform has
            ``same_on_batch=True``.
    """

    name = "kornia"
    library = "kornia"

    def __init__(self, spec: ExternalSpec) -> None:
        super().__init__(spec, per_batch=all(s.kwargs.get("same_on_batch") is True
                                             for s in spec.stages))
        if spec.prefix.kwargs:
            raise ValueError(f"{spec.prefix}: kornia specs take no options")
        K = _import_library(spec.label(spec.stages[0]), "kornia.augmentation")
        modules = []
        for stage in spec.stages:
            label = spec.label(stage)
            cls = self._transform_class(K, label, stage.name)
            modules.append(_construct(label, cls, stage.kwargs))
        self.module = torch.nn.Sequential(*modules)

    @staticmethod
    def _transform_class(K: types.ModuleType, label: str, name: str) -> type:
        try:
            cls = _resolve_attr(K, name)
        except AttributeError:
            known = [n for n in dir(K) if n[:1].isupper()]
            raise _unknown_name(label, name, "kornia.augmentation", known) from None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ValueError(f"{label}: kornia.augmentation.{name} is not a transform class")
        if issubclass(cls, K.MixAugmentationBaseV2):
            raise ValueError(f"{label}: kornia's mixing transforms do not report what they mix "
                             "(augkd's MixRecord); use augkd's mixup or cutmix")
        if issubclass(cls, K.AugmentationBase3D):
            raise ValueError(f"{label}: a 3D (volume) transform; augkd images are 2D")
        return cls

    @classmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> KorniaAugmentation:
        """Build the pipeline; ``per_batch`` True/False sets/clears ``same_on_batch`` on all.

        Raises:
            ValueError: per-batch mode and a transform without ``same_on_batch``.
        """
        if per_batch is None:
            return cls(spec)
        stages = []
        for stage in spec.stages:
            kwargs = {k: v for k, v in stage.kwargs.items() if k != "same_on_batch"}
            if per_batch:
                K = _import_library(spec.label(stage), "kornia.augmentation")
                target = cls._transform_class(K, spec.label(stage), stage.name)
                if "same_on_batch" not in inspect.signature(target).parameters:
                    raise ValueError(
                        f"{spec}: per-batch mode needs same_on_batch on every kornia transform, "
                        f"and {stage.name} has none: kornia draws its parameters per image"
                    )
                kwargs["same_on_batch"] = True
            stages.append(Stage(stage.name, kwargs))
        return cls(ExternalSpec(spec.prefix, tuple(stages)))

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> KorniaParams:
        """Draw the seed of kornia's draws for this batch, int64 ``[]`` on ``device``."""
        return KorniaParams(torch.randint(0, _SEED_HIGH, (), device=device, generator=generator))

    def apply(self, images: Tensor, params: KorniaParams) -> AugmentOutput:
        """Run the pipeline on float ``[0, 1]`` images under the seed; uint8 ``[B, C, H, W]``."""
        device = images.device
        with (self._naming_the_spec(), seeded_global_rng(int(params.seed), device),
              torch.autocast(device.type, enabled=False)):
            out = self.module(images.float().div_(255.0))
        if out.shape != images.shape:
            raise ValueError(f"{self.spec}: kornia returned shape {tuple(out.shape)} for images "
                             f"{tuple(images.shape)}; augkd DAs keep the shape")
        out = out.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return AugmentOutput(images=like_input_format(out, images))


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global CPU stream (and ``device``'s, on CUDA) with ``seed`` inside, and
    restore both as they were on exit, so library code that draws globally repeats and the
    caller's streams are untouched.

    Raises:
        ValueError: a device other than CPU and CUDA (no tested way to fork its stream).
    """
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"kornia specs run on cpu or cuda images, not {device.type}")
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.random.fork_rng(devices=[] if index is None else [index]):
        torch.random.default_generator.manual_seed(seed)
        if index is not None:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


@dataclasses.dataclass(frozen=True)
class AlbumentationsParams:
    """Parameters of :class:`AlbumentationsAugmentation`: ``seeds`` int64 ``[B]``, one per image."""

    seeds: Tensor


class AlbumentationsAugmentation(LibraryAugmentation):
    """An ``albumentations.Compose`` of the spec's transforms, applied per image on the CPU.

    Args:
        spec: the parsed ``albumentations:`` spec; its one option, ``workers`` (int, default
            0), is the number of threads the images of a batch are spread over (0: none).
    """

    name = "albumentations"
    library = "albumentations"

    def __init__(self, spec: ExternalSpec) -> None:
        super().__init__(spec, per_batch=False)
        options = dict(spec.prefix.kwargs)
        workers = options.pop("workers", 0)
        if options:
            raise ValueError(f"{spec.prefix}: unknown option {next(iter(options))!r}; "
                             "allowed: workers")
        check_param(spec.prefix.name, "workers", workers,
                    type(workers) is int and 0 <= workers <= MAX_WORKERS,
                    f"an integer in [0, {MAX_WORKERS}]")
        self.workers = workers
        A = _import_library(spec.label(spec.stages[0]), "albumentations")
        # One Compose per thread: the random state is set on the Compose before each image.
        self._composes = [self._compose(A) for _ in range(max(1, workers))]

    def _compose(self, A: types.ModuleType) -> Any:
        transforms = []
        for stage in self.spec.stages:
            label = self.spec.label(stage)
            try:
                cls = _resolve_attr(A, stage.name)
            except AttributeError:
                known = [n for n in dir(A) if isinstance(getattr(A, n), type)
                         and issubclass(getattr(A, n), A.BasicTransform)]
                raise _unknown_name(label, stage.name, "albumentations", known) from None
            if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
                raise ValueError(f"{label}: albumentations.{stage.name} is not a transform class")
            transforms.append(_construct(label, cls, stage.kwargs))
        return A.Compose(transforms)

    @classmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> AlbumentationsAugmentation:
        """Build the Compose; per-batch mode fails (albumentations draws per image)."""
        if per_batch:
            raise ValueError(f"{spec}: per-batch mode is not available: albumentations draws "
                             "per image (each image's random parameters separately)")
        return cls(spec)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> AlbumentationsParams:
        """Draw one seed per image, int64 ``[B]`` on ``device``."""
        return AlbumentationsParams(
            torch.randint(0, _SEED_HIGH, (shape[0],), device=device, generator=generator)
        )

    def apply(self, images: Tensor, params: AlbumentationsParams) -> AugmentOutput:
        """Transform each image (uint8 ``[B, C, H, W]``) on the CPU with its seed; same shape."""
        hwc = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # [B, H, W, C]
        seeds = params.seeds.tolist()
        out = np.empty_like(hwc)
        chunks = np.array_split(np.arange(len(hwc)), len(self._composes))

        def run(compose: Any, indices: np.ndarray) -> None:
            for i in indices:
                compose.set_random_state(np.random.default_rng(seeds[i]), random.Random(seeds[i]))
                result = compose(image=hwc[i])["image"]
                out[i] = self._checked(result, hwc[i])

        with self._naming_the_spec():
            if self.workers == 0:
                run(self._composes[0], chunks[0])
            else:
                with ThreadPoolExecutor(self.workers) as pool:
                    jobs = zip(self._composes, chunks, strict=True)
                    for done in [pool.submit(run, compose, idx) for compose, idx in jobs]:
                        done.result()
        result = torch.from_numpy(out).to(images.device).permute(0, 3, 1, 2).contiguous()
        return AugmentOutput(images=like_input_format(result, images))

    def _checked(self, result: Any, image: np.ndarray) -> np.ndarray:
        """``result`` as ``H x W x C`` uint8 like ``image``, or a ValueError naming the spec."""
        if isinstance(result, np.ndarray) and result.ndim == 2 and image.shape[-1] == 1:
            result = result[:, :, None]  # OpenCV drops a single channel
        if (not isinstance(result, np.ndarray) or result.shape != image.shape
                or result.dtype != np.uint8):
            got = (f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray)
                   else type(result).__name__)
            raise ValueError(f"{self.spec}: returned {got} for a uint8 {image.shape} image; "
                             "augkd DAs keep the shape and the uint8 dtype")
        return result


_LIBRARIES: dict[str, type[LibraryAugmentation]] = {
    KorniaAugmentation.library: KorniaAugmentation,
    AlbumentationsAugmentation.library: AlbumentationsAugmentation,
}


# -------------------------------------------------------------------------------- user DAs


def _create_user(spec: ExternalSpec, *, per_batch: bool | None) -> Augmentation:
    module_name = spec.prefix.name
    label = str(spec)
    if spec.prefix.kwargs:
        raise ValueError(f"{label}: a module:Class spec takes no options before the colon")
    if len(spec.stages) != 1:
        raise ValueError(f"{label}: a module:Class spec names one class; chain steps inside it "
                         f"({PIPE!r} pipelines are for kornia: and albumentations:)")
    stage = spec.stages[0]
    check_import(label, module_name)  # a spec read back from a folder imports nothing
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UnknownNameError(
            f"{label}: cannot import module {module_name!r} ({err}); a module:Class spec needs "
            "the module on sys.path (kornia: and albumentations: name those libraries)"
        ) from err
    try:
        cls = _resolve_attr(module, stage.name)
    except AttributeError:
        known = [n for n, v in vars(module).items()
                 if isinstance(v, type) and issubclass(v, Augmentation) and v is not Augmentation]
        raise _unknown_name(label, stage.name, f"module {module_name}", known) from None
    if not (isinstance(cls, type) and issubclass(cls, Augmentation)):
        hint = ""
        if module_name.split(".")[0] in _LIBRARIES:
            hint = f"; for the library's transforms write {module_name.split('.')[0]}:{stage.name}"
        raise ValueError(
            f"{label}: {module_name}.{stage.name} is not a subclass of "
            f"augkd.augment.base.Augmentation (see the template in augkd.augment.external){hint}"
        )
    params = spec_parameters(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: the values are passed as written
        hints = {}
    kwargs = dict(stage.kwargs)
    for key, value in kwargs.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ValueError(f"{label}: unknown parameter {key!r}; allowed: {allowed} "
                             "(a spec's parameters are the keyword-only ones of __init__)")
        kwargs[key] = coerce_value(label, key, value, hints.get(key, Any))
    if per_batch is not None:
        if "per_batch" in params:
            kwargs["per_batch"] = bool(per_batch)
        elif per_batch:
            raise ValueError(f"{label}: per-batch mode is not available, {cls.__qualname__}."
                             "__init__ takes no per_batch, so it draws per image")
    try:
        aug = cls(**kwargs)
    except TypeError as err:  # abstract sample/apply, a missing required parameter
        raise ValueError(f"{label}: breaks the augkd DA contract: {err}") from err
    except ValueError as err:
        raise ValueError(f"{label}: {err}") from err
    for key, value in kwargs.items():
        if getattr(aug, key, object()) != value:
            raise ValueError(f"{label}: breaks the augkd DA contract: parameter {key!r} is not "
                             f"stored as the attribute {key!r}, so spec_of cannot write it back")
    return aug
