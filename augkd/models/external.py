"""Models of torchvision and timm under augkd's contract: ``tv:NAME`` and ``timm:NAME`` specs.

Wherever augkd takes a model name (``--model``, ``--teacher-model``, a sweep's pairs, a run
folder's manifest) it also takes a spec of the grammar of the DA specs::

    tv:resnet18                                   torchvision, random init
    tv:resnet50(weights=IMAGENET1K_V2, head=new)  torchvision's weights, a fresh classifier
    tv:vit_b_16(image_size=32)                    other options go to the library's builder
    timm:resnet18(weights=true)                   timm's default pretrained tag
    timm:convnext_tiny(weights=fb_in22k)          a named timm tag (convnext_tiny.fb_in22k)
    tv:resnet18(weights=/data/resnet18.pth)       a local state_dict file

``weights`` is a torchvision weights enum member (``IMAGENET1K_V1``, ``DEFAULT``), a timm
pretrained tag (``true`` for the default one), or the path of a state_dict file, read with
``torch.load(weights_only=True)``. Library weights download only when such a spec is built, on
the user's machine (into torch's or Hugging Face's cache); nothing is fetched at import.

When the weights were trained on another number of classes than the dataset's, ``head`` says
what to do: ``new`` replaces the classifier's last ``nn.Linear`` by a fresh one (fine-tuning);
``subset`` keeps the 1000 ImageNet-1K logits and picks the dataset's classes among them by wnid
(:class:`augkd.models.class_subset.ClassSubset`; the dataset's class names are passed as
``create_model(..., classes=...)``). Without ``head`` a mismatch stops, naming both counts.
Images with other than 3 channels get a first conv of that many input channels; from pretrained
weights, its kernel is the RGB kernel summed (1 channel) or repeated and rescaled.

Features (``model(x, features=True)``, :class:`augkd.models.base.ModelOutput`):

* torchvision: the graph is traced with ``torchvision.models.feature_extraction``. The stages are
  the outputs of the last module at each of the four deepest spatial resolutions, modules taken at
  the shallowest nesting depth of their names (``layer1`` ... ``layer4`` of a ResNet,
  ``features.N`` of MobileNet, EfficientNet, DenseNet, VGG) that shows four resolutions, found by
  one probe forward at the library's input size (224 unless the builder sets ``image_size``). A
  VisionTransformer's stages are its last four encoder blocks, their patch tokens laid out on the
  patch grid ``[B, D, H/p, W/p]``. Architectures with neither (Swin and MaxViT, whose maps are
  channels-last) give logits but refuse ``features=True``, naming the model.
* timm: ``forward_intermediates`` (timm >= 1.0), its last four intermediates as NCHW maps
  (ViTs: the last four blocks on the patch grid); ``forward_head`` gives the pooled feature
  (``pre_logits=True``) and the logits.

Every stage is rectified (``relu``) when handed out, as the zoo rectifies MobileNetV2's linear
bottlenecks: this changes nothing for stages that already follow a ReLU (ResNets, VGG, DenseNet's
last map, MobileNetV2's last conv) and clips the negative part of SiLU, Hardswish and GELU maps
(EfficientNet, MobileNetV3, ConvNeXt, transformers). ``pooled`` is the input of the classifier's
last linear layer, not rectified: the globally averaged last map for ResNets, the class token
of a ViT, the hidden layer of MobileNetV3's MLP head; so ``pooled == stages[-1].mean((2, 3))``
holds only where the last map is already post-ReLU and the head is a pooling and one linear layer.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.grammar import check_spec_length, parse_spec
from augkd.models.base import KDModel, ModelOutput
from augkd.models.files import check_tensors, read_checkpoint_file
from augkd.registry import UnknownNameError

#: The library prefixes of a model spec and the library each names.
SOURCES = {"tv": "torchvision", "timm": "timm"}
HEADS = ("new", "subset")

_SPEC_RE = re.compile(r"^\s*(?P<source>[A-Za-z]\w*):(?P<name>[A-Za-z][\w.\-]*)\s*"
                      r"(?P<args>\(.*\))?\s*$", re.DOTALL)
_SOURCE_RE = re.compile(r"^\s*(?P<source>[A-Za-z]\w*):")
_PATH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
_PROBE_SIZE = 224  # torchvision's graph is probed on the meta device: no arithmetic
_TIMM_PROBE_SIZE = 64  # a stride-32 network still has 2x2 maps at its last stage
_CLOSE = 5


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed ``source:name(options)`` model spec.

    Attributes:
        source: ``"tv"`` or ``"timm"``.
        name: the library's model name (``resnet18``; timm's may carry a tag,
            ``convnext_tiny.fb_in22k``).
        weights: ``None`` (random init), a library weights name or tag, ``True`` (timm's default
            pretrained tag; torchvision's ``DEFAULT``) or a file path (a ``str`` ending in a
            checkpoint suffix or holding a ``/``).
        head: ``None``, ``"new"`` or ``"subset"``.
        kwargs: the other options, passed to the library's builder.
        text: the spec as given.
    """

    source: str
    name: str
    weights: str | bool | None
    head: str | None
    kwargs: dict[str, Any]
    text: str

    @property
    def library(self) -> str:
        return SOURCES[self.source]

    @property
    def weights_file(self) -> Path | None:
        """The state_dict file ``weights`` names, or None for library weights or none."""
        w = self.weights
        if isinstance(w, str) and ("/" in w or "\\" in w or w.endswith(_PATH_SUFFIXES)):
            return Path(w).expanduser()
        return None


def is_model_spec(name: object) -> bool:
    """Whether ``name`` has the ``source:`` prefix of a library model spec (``tv:``, ``timm:``,
    or an unknown source, which :func:`parse_model_spec` refuses by name)."""
    return isinstance(name, str) and _SOURCE_RE.match(name) is not None


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``tv:NAME(key=value, ...)`` or ``timm:NAME(...)`` (no library is imported).

    Raises:
        ValueError: malformed spec, unknown source, bad ``head`` or ``weights`` value; the
            message names the spec and what was expected.
    """
    check_spec_length(text, "model")
    match = _SPEC_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"malformed model spec {text!r}; expected SOURCE:NAME or "
                         "SOURCE:NAME(key=value, ...), e.g. tv:resnet18(weights=IMAGENET1K_V1)")
    source, name = match.group("source"), match.group("name")
    if source not in SOURCES:
        raise ValueError(f"unknown model source {source!r} in {text!r}; known: "
                         + ", ".join(f"{k} ({v})" for k, v in SOURCES.items()))
    _, options = parse_spec("m" + (match.group("args") or ""), "model")
    weights = options.pop("weights", None)
    head = options.pop("head", None)
    if weights is False:
        weights = None
    if weights is not None and not isinstance(weights, (str, bool)):
        raise ValueError(f"{text}: bad value weights={weights!r}; expected a weights name, a "
                         "pretrained tag, true or a file path")
    reserved = [k for k in ("num_classes", "in_chans", "in_channels", "pretrained")
                if k in options]
    if reserved:
        raise ValueError(f"{text}: {', '.join(reserved)} cannot be set in a model spec; the "
                         "dataset sets the classes and channels, weights=... the pretrained "
                         "weights")
    if head is not None and head not in HEADS:
        raise ValueError(f"{text}: bad value head={head!r}; allowed: {', '.join(HEADS)}")
    return ModelSpec(source, name, weights, head, options, text)


# ------------------------------------------------------------------------ the libraries
def import_library(source: str):
    """The library module of ``source``; ImportError with the install line when it is absent."""
    module = SOURCES[source]
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = " (pip install 'augkd[timm]')" if source == "timm" else ""
        raise ImportError(f"model source {source}: needs {module}, which is not installed: "
                          f"pip install {module}{extra}") from None


@functools.cache
def library_model_names(source: str) -> tuple[str, ...]:
    """The model names the library builds (torchvision's classification models, timm's all)."""
    lib = import_library(source)
    if source == "tv":
        return tuple(lib.models.list_models(module=lib.models))
    return tuple(lib.list_models())


def check_model_name(spec: ModelSpec) -> None:
    """Raise :class:`UnknownNameError` with close matches when the library lacks the model."""
    base = spec.name.split(".", 1)[0] if spec.source == "timm" else spec.name
    names = library_model_names(spec.source)
    if base in names:
        return
    close = difflib.get_close_matches(base, names, n=_CLOSE, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(
        f"unknown {spec.library} model {base!r} in {spec.text!r}{hint} ({len(names)} known: "
        f"{'torchvision.models.list_models()' if spec.source == 'tv' else 'timm.list_models()'})")


def _conv_with_inputs(conv: nn.Conv2d, in_channels: int, from_weights: bool) -> nn.Conv2d:
    """``conv`` rebuilt for ``in_channels`` inputs: its RGB kernel summed over the inputs for
    one channel, repeated and scaled by ``3 / in_channels`` otherwise (the mean response to a
    grey image stays the same), or freshly initialised when there are no trained weights."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype)
    if from_weights:
        with torch.no_grad():
            w = conv.weight
            if in_channels == 1:
                new.weight.copy_(w.sum(1, keepdim=True))
            else:
                reps = math.ceil(in_channels / w.shape[1])
                new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :in_channels] * (w.shape[1]
                                                                           / in_channels))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    return new


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _first_conv_name(model: nn.Module) -> str:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no Conv2d to take the image channels")


def _timm_first_conv(model: nn.Module) -> str:
    """The stem conv timm's pretrained config names (``conv1``, ``patch_embed.proj``)."""
    name = getattr(model, "pretrained_cfg", {}).get("first_conv")
    if isinstance(name, str) and isinstance(model.get_submodule(name), nn.Conv2d):
        return name
    return _first_conv_name(model)


def _last_linear_name(model: nn.Module) -> str:
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to replace")
    return names[-1]


def read_state_dict(path: Path, spec_text: str) -> dict[str, Tensor]:
    """The state_dict in ``path`` (``torch.load(weights_only=True)``; a plain state_dict, or
    one under ``model``/``state_dict`` as the layouts of :mod:`augkd.models.layouts` say)."""
    from augkd.models.layouts import extract_weights

    if not path.is_file():
        raise FileNotFoundError(f"{spec_text}: no weights file at {path}")
    state = extract_weights(read_checkpoint_file(path), path).state
    check_tensors(state, path)
    return state


def _load_into(model: nn.Module, state: dict[str, Tensor], path: Path, spec_text: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{spec_text}: the weights in {path} do not fit the library's model: "
                         f"{detail[:400]}") from None


@dataclasses.dataclass
class _Built:
    """A library model before augkd wraps it, and what its weights were trained for."""

    model: nn.Module
    weights_classes: int  # the number of logits of the weights (the built model's now)
    weights_channels: int
    pretrained: bool


def _build_torchvision(spec: ModelSpec, num_classes: int, classes_if_bare: int,
                       load_weights: bool) -> _Built:
    tv_models = import_library("tv").models
    kwargs = dict(spec.kwargs)
    weights, path = spec.weights, spec.weights_file
    if weights is not None and path is None:  # a weights enum of torchvision, by name
        member = "DEFAULT" if weights is True else str(weights)
        enum = tv_models.get_model_weights(spec.name)
        try:
            chosen = enum[member]
        except KeyError:
            known = ", ".join(dict.fromkeys(["DEFAULT", *enum.__members__]))
            raise ValueError(f"{spec.text}: torchvision has no weights {member!r} for "
                             f"{spec.name}; known: {known}") from None
        _check_head(spec, len(chosen.meta["categories"]), num_classes)  # before any download
        if load_weights:
            try:
                model = tv_models.get_model(spec.name, weights=chosen, **kwargs)
            except OSError as err:  # urllib's URLError is an OSError
                raise _download_error(spec, err) from None
        else:
            model = tv_models.get_model(spec.name, num_classes=len(chosen.meta["categories"]),
                                        **kwargs)
        return _Built(model, len(chosen.meta["categories"]), 3, load_weights)
    if path is not None and load_weights:
        state = read_state_dict(path, spec.text)
        with torch.device("meta"):  # names only: which tensors hold the classes and channels
            names = tv_models.get_model(spec.name, **kwargs)
        conv, linear = _first_conv_name(names), _last_linear_name(names)
        classes, channels = _file_shapes(state, conv, linear, spec, path, "torchvision")
        model = tv_models.get_model(spec.name, num_classes=classes, **kwargs)
        if channels != 3:
            _set_module(model, conv, _conv_with_inputs(model.get_submodule(conv), channels,
                                                       False))
        _load_into(model, state, path, spec.text)
        return _Built(model, classes, channels, True)
    # no weights, or weights a run folder replaces: the shapes the adapted model will have
    classes = num_classes if path is None else classes_if_bare
    model = tv_models.get_model(spec.name, num_classes=classes, **kwargs)
    return _Built(model, classes, 3, False)


def _file_shapes(state: dict[str, Tensor], conv: str, linear: str, spec: ModelSpec,
                 path: Path, library: str) -> tuple[int, int]:
    """(classes, input channels) of a weights file: its classifier's rows and its first conv's
    input channels; a file without those tensors is named as not the library's model."""
    try:
        return state[f"{linear}.weight"].shape[0], state[f"{conv}.weight"].shape[1]
    except KeyError as err:
        raise ValueError(f"{spec.text}: {path} has no tensor {err.args[0]!r}; it is not a "
                         f"state_dict of {library}'s {spec.name}") from None


def _build_timm(spec: ModelSpec, num_classes: int, classes_if_bare: int,
                load_weights: bool) -> _Built:
    timm = import_library("timm")
    kwargs = dict(spec.kwargs)
    weights, path = spec.weights, spec.weights_file
    if weights is not None and path is None:
        name = spec.name if weights is True else f"{spec.name.split('.', 1)[0]}.{weights}"
        if not timm.list_pretrained(name) and not timm.list_pretrained(name + ".*"):
            tags = [n.split(".", 1)[1] for n in timm.list_pretrained(
                spec.name.split(".", 1)[0] + ".*")]
            raise ValueError(f"{spec.text}: timm has no pretrained weights {name!r}; its tags "
                             f"for {spec.name.split('.', 1)[0]}: {', '.join(tags) or 'none'}")
        try:
            model = timm.create_model(name, pretrained=load_weights, **kwargs)
        except OSError as err:  # no network, no cache (huggingface_hub's errors are OSErrors)
            raise _download_error(spec, err) from None
        return _Built(model, model.num_classes, 3, load_weights)
    if path is not None and load_weights:
        state = read_state_dict(path, spec.text)
        with torch.device("meta"):
            names = timm.create_model(spec.name, **kwargs)
        conv, linear = _timm_first_conv(names), names.pretrained_cfg.get("classifier")
        linear = linear or _last_linear_name(names)
        classes, channels = _file_shapes(state, conv, linear, spec, path, "timm")
        model = timm.create_model(spec.name, num_classes=classes, in_chans=channels, **kwargs)
        _load_into(model, state, path, spec.text)
        return _Built(model, classes, channels, True)
    classes = num_classes if path is None else classes_if_bare
    model = timm.create_model(spec.name, num_classes=classes, **kwargs)
    return _Built(model, classes, 3, False)


def _check_head(spec: ModelSpec, weights_classes: int, num_classes: int) -> None:
    if spec.head is None and weights_classes != num_classes:
        raise ValueError(
            f"{spec.text}: the weights have {weights_classes} classes, the dataset "
            f"{num_classes}; add head=new (a fresh classifier, to fine-tune) or, for "
            "ImageNet-1K weights on a subset of its classes, head=subset (logits picked by wnid)")


def _download_error(spec: ModelSpec, err: Exception) -> OSError:
    return OSError(f"{spec.text}: {spec.library} could not fetch weights {spec.weights!r} "
                   f"({' '.join(str(err).split())[:200]}); fetch them where there is a network "
                   "(they are cached: torch's hub cache, Hugging Face's cache) or save the "
                   "state_dict and pass weights=PATH")


def _adapt(spec: ModelSpec, built: _Built, num_classes: int, in_channels: int,
           classes: Sequence[str] | None) -> tuple[nn.Module, Sequence[str] | None]:
    """Give the model ``in_channels`` inputs and the dataset's classes (``head``).

    Returns:
        The model and, for ``head=subset``, the names of its logits (else None).
    """
    model = built.model
    if in_channels != built.weights_channels:
        conv = _timm_first_conv(model) if spec.source == "timm" else _first_conv_name(model)
        _set_module(model, conv, _conv_with_inputs(model.get_submodule(conv), in_channels,
                                                   built.pretrained))
    if spec.head == "subset":
        from augkd.models.imagenet_classes import IMAGENET1K_WNIDS

        if built.weights_classes != len(IMAGENET1K_WNIDS):
            raise ValueError(f"{spec.text}: head=subset picks classes among ImageNet-1K's 1000 "
                             f"by wnid, but these weights have {built.weights_classes} classes")
        if classes is None:
            raise ValueError(f"{spec.text}: head=subset needs the dataset's class names "
                             "(create_model(..., classes=dataset.classes)) to pick its logits")
        if len(classes) != num_classes:
            raise ValueError(f"{spec.text}: {len(classes)} class names for {num_classes} classes")
        return model, IMAGENET1K_WNIDS
    if spec.head == "new" or built.weights_classes != num_classes:
        _check_head(spec, built.weights_classes, num_classes)
        if spec.source == "timm":
            model.reset_classifier(num_classes)
        else:
            name = _last_linear_name(model)
            old = model.get_submodule(name)
            _set_module(model, name, nn.Linear(old.in_features, num_classes,
                                               bias=old.bias is not None))
    return model, None


# ------------------------------------------------------------------------ the wrappers
def _rectified(stages: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return tuple(F.relu(s) for s in stages)


def _tokens_to_grid(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """ViT tokens ``[B, 1 + h*w, D]`` (class token first) -> ``[B, D, h, w]``."""
    patches = tokens[:, tokens.shape[1] - grid[0] * grid[1]:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


@dataclasses.dataclass(frozen=True)
class _GraphPlan:
    """Which traced nodes give the stages, the pooled feature and the logits."""

    stages: tuple[str, ...]  # empty: features not supported
    pooled: str
    logits: str
    layout: str = "NCHW"  # of the stage nodes: "NCHW", "NHWC" (Swin) or "tokens" (ViT)
    why_not: str = ""  # why there are no stages


def _resolution_groups(nodes: list[str], shapes: dict[str, tuple[int, ...]],
                       depth: int) -> dict[tuple[int, int], str]:
    """The last node of the last module (names cut to ``depth`` parts) at each resolution."""
    last: dict[tuple[int, int], str] = {}
    position = {node: i for i, node in enumerate(nodes)}
    for node in nodes:
        shape = shapes.get(node)
        if shape is None or len(shape) != 4 or shape[2] * shape[3] <= 1:
            continue
        module = ".".join(node.split(".")[:depth])
        nxt = position[node] + 1
        # only a module's last node gives its output
        if nxt < len(nodes) and ".".join(nodes[nxt].split(".")[:depth]) == module \
                and module != node:
            continue
        last[shape[2:]] = node
    return last


def plan_torchvision_features(
    model: nn.Module, in_channels: int,
) -> tuple[_GraphPlan, tuple[tuple[int, ...], ...], int]:
    """Choose the stage, pooled and logit nodes of a torchvision model by one probe forward.

    See the module docstring for the rule. The probe runs in eval mode without gradients;
    ``model`` is left in eval mode and otherwise unchanged.

    Returns:
        The plan, the ``(C, H, W)`` of the stages at the probe size (ViT blocks: ``(D,)``),
        and the length of the pooled feature.
    """
    from torchvision.models import SwinTransformer, VisionTransformer
    from torchvision.models.feature_extraction import (
        create_feature_extractor,
        get_graph_node_names,
    )

    _, nodes = get_graph_node_names(model)
    classifier = _last_linear_name(model)
    if classifier not in nodes:
        raise ValueError(f"{type(model).__name__}: its classifier {classifier!r} is not a node "
                         "of the traced graph")
    at = nodes.index(classifier)
    pooled, logits = nodes[at - 1], nodes[-1]
    probe_nodes = nodes[1:at]
    size = getattr(model, "image_size", _PROBE_SIZE)
    extractor = create_feature_extractor(model.eval(), return_nodes=probe_nodes)
    with torch.no_grad():
        out = extractor(torch.zeros(1, in_channels, size, size, device=_device(model)))
    shapes = {k: tuple(v.shape) for k, v in out.items() if isinstance(v, Tensor)}
    feature_dim = int(shapes[pooled][1])
    if isinstance(model, VisionTransformer):  # the last node of each of the last four blocks
        block_re = re.compile(r"^(encoder\.layers\.encoder_layer_\d+)\.")
        last_of = {}
        for node in probe_nodes:
            match = block_re.match(node)
            if match:
                last_of[match.group(1)] = node
        blocks = list(last_of.values())[-4:]
        return (_GraphPlan(tuple(blocks), pooled, logits, layout="tokens"),
                tuple((shapes[b][2],) for b in blocks), feature_dim)
    if isinstance(model, SwinTransformer):  # features.1, .3, .5, .7: the stages, channels-last
        last_of = {}
        for node in probe_nodes:
            head = ".".join(node.split(".")[:2])
            if head in ("features.1", "features.3", "features.5", "features.7"):
                last_of[head] = node
        blocks = list(last_of.values())
        return (_GraphPlan(tuple(blocks), pooled, logits, layout="NHWC"),
                tuple((shapes[b][3], *shapes[b][1:3]) for b in blocks), feature_dim)
    found = 0
    for depth in range(1, max(n.count(".") for n in probe_nodes) + 2):
        last = _resolution_groups(probe_nodes, shapes, depth)
        found = max(found, len(last))
        if len(last) >= 4:
            stages = tuple(list(last.values())[-4:])
            return (_GraphPlan(stages, pooled, logits), tuple(shapes[n][1:] for n in stages),
                    feature_dim)
    return _GraphPlan((), pooled, logits, why_not=(
        f"its graph has {found} NCHW resolutions (< 4) at {size} px and it is neither a "
        "VisionTransformer nor a SwinTransformer")), (), feature_dim


class TorchvisionModel(KDModel):
    """A torchvision classifier under augkd's contract (the traced graph is ``self.net``).

    ``self.net`` is ``create_feature_extractor``'s GraphModule of the library model: its
    state_dict keys are the library's (``conv1.weight``, ``fc.bias``, ...) for every module the
    forward uses, and a forward returns the logits together with the chosen stage nodes.
    """

    def __init__(self, model: nn.Module, plan: _GraphPlan, shapes: tuple[tuple[int, ...], ...],
                 feature_dim: int, num_classes: int, spec_text: str) -> None:
        from torchvision.models.feature_extraction import create_feature_extractor

        channels = tuple(int(s[0]) for s in shapes) if shapes else (0, 0, 0, 0)
        super().__init__(channels, feature_dim, num_classes, pooled_is_last_stage=False)
        self.plan, self.spec_text = plan, spec_text
        self.grid = None
        if plan.layout == "tokens":  # a ViT: its patch tokens on the patch grid
            self.grid = (model.image_size // model.patch_size,) * 2
        returns = {n: f"stage{i}" for i, n in enumerate(plan.stages)}
        returns.update({plan.pooled: "pooled", plan.logits: "logits"})
        self.net = create_feature_extractor(model, return_nodes=returns)

    def forward(self, x: Tensor, features: bool = False) -> Tensor | ModelOutput:
        out = self.net(x)
        if not features:
            return out["logits"]
        if not self.plan.stages:
            raise ValueError(f"{self.spec_text}: no feature stages ({self.plan.why_not}); use a "
                             "logit method (kd, dkd) or the model's timm: counterpart")
        stages = [out[f"stage{i}"] for i in range(4)]
        if self.plan.layout == "tokens":
            stages = [_tokens_to_grid(s, self.grid) for s in stages]
        elif self.plan.layout == "NHWC":
            stages = [s.permute(0, 3, 1, 2) for s in stages]
        return ModelOutput(out["logits"], _rectified(stages), out["pooled"])


class TimmModel(KDModel):
    """A timm classifier under augkd's contract (the library model is ``self.net``)."""

    def __init__(self, model: nn.Module, num_classes: int, spec_text: str,
                 in_channels: int) -> None:
        channels, feature_dim = (0, 0, 0, 0), int(getattr(model, "num_features", 0))
        has_intermediates = hasattr(model, "forward_intermediates")
        if has_intermediates:  # the sizes from one probe at the library's input size
            # channels do not depend on the size: a small probe, unless the model fixes it (ViT)
            fixed = getattr(getattr(model, "patch_embed", None), "img_size", None)
            size = tuple(fixed) if fixed is not None else (_TIMM_PROBE_SIZE, _TIMM_PROBE_SIZE)
            was = model.training
            model.eval()
            with torch.no_grad():
                out = _timm_features(model, torch.zeros(1, in_channels, *size,
                                                        device=_device(model)))
            model.train(was)
            channels = tuple(int(s.shape[1]) for s in out.stages)
            feature_dim = int(out.pooled.shape[1])
        super().__init__(channels, feature_dim, num_classes, pooled_is_last_stage=False)
        self.net = model
        self.spec_text = spec_text
        self.has_intermediates = has_intermediates

    def forward(self, x: Tensor, features: bool = False) -> Tensor | ModelOutput:
        if not features:
            return self.net(x)
        if not self.has_intermediates:
            raise ValueError(f"{self.spec_text}: timm's {type(self.net).__name__} has no "
                             "forward_intermediates (timm >= 1.0), so no feature stages; use a "
                             "logit method (kd, dkd)")
        return _timm_features(self.net, x)


def _timm_features(model: nn.Module, x: Tensor) -> ModelOutput:
    """The last four intermediates (NCHW), the head's input and the logits of a timm model."""
    final, stages = model.forward_intermediates(x, indices=4, output_fmt="NCHW")
    pooled = model.forward_head(final, pre_logits=True)
    logits = model.forward_head(final)
    return ModelOutput(logits, _rectified(stages), pooled)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@functools.cache
def _torchvision_plan(name: str, kwargs: tuple, in_channels: int):
    """:func:`plan_torchvision_features` of an architecture, on a CPU copy built for it
    (cached: one probe per architecture and process)."""
    tv_models = import_library("tv").models
    for device in ("meta", "cpu"):  # meta: shapes without arithmetic; a few ops have no meta
        try:
            with torch.device(device):
                model = tv_models.get_model(name, **dict(kwargs))
                if in_channels != 3:
                    conv = _first_conv_name(model)
                    _set_module(model, conv, _conv_with_inputs(model.get_submodule(conv),
                                                               in_channels, False))
                return plan_torchvision_features(model, in_channels)
        except NotImplementedError:
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def build_external(spec: ModelSpec | str, num_classes: int, in_channels: int = 3, *,
                   load_weights: bool = True,
                   classes: Sequence[str] | None = None) -> KDModel:
    """Build a torchvision or timm model under augkd's contract.

    Args:
        spec: a ``tv:`` or ``timm:`` spec (see the module docstring).
        num_classes, in_channels: the dataset's.
        load_weights: load the spec's ``weights``; False builds the same shapes without them
            (for a caller that loads its own state, e.g. a run folder's ``model.pt``).
        classes: the dataset's class names (needed by ``head=subset``).

    Returns:
        A :class:`KDModel` in train mode on the CPU.

    Raises:
        UnknownNameError: the library has no such model (close names suggested).
        ImportError: the library is not installed.
        ValueError: bad options or weights, or a class/channel mismatch (named).
        FileNotFoundError: ``weights=PATH`` names no file.
    """
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    check_model_name(spec)
    if spec.head is not None and spec.weights is None:
        raise ValueError(f"{spec.text}: head={spec.head} applies to pretrained weights; without "
                         "weights the classifier already has the dataset's classes")
    classes_if_bare = 1000 if spec.head == "subset" else num_classes
    build = _build_torchvision if spec.source == "tv" else _build_timm
    try:
        built = build(spec, num_classes, classes_if_bare, load_weights)
    except TypeError as err:  # an option the library's builder does not take
        raise ValueError(f"{spec.text}: {spec.library} refused the options "
                         f"{spec.kwargs}: {err}") from None
    model, model_classes = _adapt(spec, built, num_classes, in_channels, classes)
    logits = len(model_classes) if model_classes is not None else num_classes
    if spec.source == "tv":
        plan, shapes, feature_dim = _torchvision_plan(
            spec.name, tuple(sorted(spec.kwargs.items())), in_channels)
        wrapped: KDModel = TorchvisionModel(model, plan, shapes, feature_dim, logits, spec.text)
    else:
        wrapped = TimmModel(model, logits, spec.text, in_channels)
    if model_classes is not None:
        from augkd.models.class_subset import ClassSubset

        wrapped = ClassSubset(wrapped, model_classes, classes)
    return wrapped.train()


def external_factory(text: str) -> Callable[..., KDModel]:
    """The factory of a ``tv:``/``timm:`` spec, checked now (name, options) so a bad spec fails
    where it is given; building (and any weights download) happens when it is called."""
    spec = parse_model_spec(text)
    check_model_name(spec)
    return functools.partial(build_external, spec)
