"""DoReFa-quantized students (Zhou et al. 2016; docs/protocol.md §10): k-bit weights and activations

The maths, for a bit width ``k`` in 1..8 (32 means full precision, nothing quantized)::

    quantize_k(r) = round((2^k - 1) r) / (2^k - 1)                        r in [0, 1]
    weights, k > 1:  w_q = 2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1
    weights, k = 1:  w_q = sign(w) E(|w|)          E: mean over the layer's whole weight tensor
    activations:     a_q = quantize_k(clip(a, 0, 1))                     in place of the ReLU

so 2-bit weights take the four levels {-1, -1/3, 1/3, 1} and 1-bit activations the two {0, 1}.
The first convolution, the last linear layer, every bias and every BatchNorm stay full precision.

Gradients are straight through (the STE): the rounding of ``quantize_k`` and the sign of 1-bit
weights pass the incoming gradient on unchanged; everything else (tanh, the max normalisation,
the clip) is differentiated as usual, as in DoReFa's reference code. The STE here is the
*exact-value* form of the detach trick, ``q.detach() + (x - x.detach())``: its forward value is
``q`` bit for bit (``x - x.detach()`` is exactly zero). The common ``x + (q - x).detach()`` is
``q`` only up to float rounding where ``x`` and ``q`` lie far apart: for 1-bit weights (a small
``w`` against ``E(|w|)``) about 5 % of the values land an ulp off, six levels instead of two.

:func:`quantize_model` turns a full-precision network into its quantized student in place. It
finds the layers by walking the modules, so every ReLU the network applies must be an
``nn.ReLU`` (or ``nn.ReLU6``) module, never ``F.relu``: the zoo's models hold one stateless
``self.relu`` per block for that. The one exception is :class:`~augkd.models.base.KDModel`'s
rectified *copy* of a linear stage (WRN, MobileNetV2), handed out only with ``features=True``:
it is not part of the network's computation and stays a plain ReLU.

>>> spec = parse_quant("w2a1")
>>> spec, str(spec)
(QuantSpec(weight_bits=2, activation_bits=1), 'w2a1')
"""

from __future__ import annotations

import dataclasses
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FULL_PRECISION",
    "SUPPORTED_BITS",
    "QuantConv2d",
    "QuantLinear",
    "QuantReLU",
    "QuantSpec",
    "parse_quant",
    "quantize_activation",
    "quantize_k",
    "quantize_model",
    "quantize_weight",
]

FULL_PRECISION = 32
SUPPORTED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, FULL_PRECISION)
_EXPECTED = "1..8 or 32"
_SPEC_FORM = re.compile(r"w([0-9]+)a([0-9]+)")


def _check_bits(bits: object, what: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise ValueError(f"{what} bits must be {_EXPECTED}, got {bits!r}")
    return bits


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """The bit widths of a quantized student; ``str(spec)`` is the canonical ``"wNaM"``.

    Attributes:
        weight_bits: bits of the weights of every conv and linear layer but the first conv and
            the last linear (1..8, or 32 for full precision).
        activation_bits: bits of the activations that replace the ReLUs (1..8, or 32 for the
            plain ReLU).
    """

    weight_bits: int
    activation_bits: int

    def __post_init__(self) -> None:
        _check_bits(self.weight_bits, "weight")
        _check_bits(self.activation_bits, "activation")

    def __str__(self) -> str:
        return f"w{self.weight_bits}a{self.activation_bits}"


def parse_quant(spec: str) -> QuantSpec:
    """Parse ``"wNaM"`` (``"w2a1"``, ``"w4a8"``, ``"w32a32"``) into a :class:`QuantSpec`.

    Raises:
        ValueError: ``spec`` is not a string of that form, or N or M is not 1..8 or 32; the
            message names the bad value and the expected form.
    """
    form = f"'wNaM' (e.g. 'w2a1', 'w32a32'): N weight bits, M activation bits, each {_EXPECTED}"
    if not isinstance(spec, str):
        raise ValueError(f"quantization spec must be a string {form}, got {spec!r}")
    match = _SPEC_FORM.fullmatch(spec)
    if match is None:
        raise ValueError(f"quantization spec {spec!r} is not of the form {form}")
    for what, digits in zip(("weight", "activation"), match.groups(), strict=True):
        if int(digits) not in SUPPORTED_BITS:
            raise ValueError(
                f"{what} bits {digits} in quantization spec {spec!r} are not supported; "
                f"expected {_EXPECTED}"
            )
    return QuantSpec(int(match[1]), int(match[2]))


def _straight_through(x: Tensor, q: Tensor) -> Tensor:
    """``q`` in the forward (exactly), the identity gradient with respect to ``x``."""
    return q.detach() + (x - x.detach())


def quantize_k(x: Tensor, k: int) -> Tensor:
    """DoReFa's ``quantize_k``: round ``x`` to the ``2^k`` levels ``j / (2^k - 1)``.

    Args:
        x: float tensor of any shape with values in [0, 1] (not checked: callers clip or
            normalise first).
        k: bits, 1..8; 32 returns ``x`` itself.

    Returns:
        Same shape and dtype; forward values exactly ``round((2^k - 1) x) / (2^k - 1)``,
        gradient straight through (identity).
    """
    if _check_bits(k, "quantization") == FULL_PRECISION:
        return x
    levels = 2**k - 1
    return _straight_through(x, torch.round(x * levels) / levels)


def quantize_weight(w: Tensor, k: int) -> Tensor:
    """DoReFa weight quantization of one layer's whole weight tensor.

    Args:
        w: float weight of any shape.
        k: bits. 2..8: ``2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``, values in
            [-1, 1], gradient through tanh and the normalisation, straight through the
            rounding (an all-zero weight is normalised by the smallest normal float instead of
            0, giving a constant level rather than NaN). 1: ``+-E(|w|)``, ``+`` for ``w >= 0``
            (so exactly two levels, zeros included), gradient straight through. 32: ``w``.

    Returns:
        Same shape and dtype as ``w``.
    """
    if _check_bits(k, "weight") == FULL_PRECISION:
        return w
    if k == 1:
        scale = w.abs().mean().detach()
        return _straight_through(w, torch.where(w >= 0, scale, -scale))
    t = torch.tanh(w)
    r = t / (2 * t.abs().max().clamp_min(torch.finfo(t.dtype).tiny)) + 0.5
    return 2 * quantize_k(r, k) - 1


def quantize_activation(a: Tensor, k: int) -> Tensor:
    """DoReFa activation quantization, in place of a ReLU.

    Args:
        a: float pre-activation of any shape.
        k: bits, 1..8: ``quantize_k(clip(a, 0, 1))``, gradient 1 inside [0, 1] and 0 outside
            (the clip's), straight through the rounding; 32: the plain ``relu(a)``.

    Returns:
        Same shape and dtype as ``a``.
    """
    if _check_bits(k, "activation") == FULL_PRECISION:
        return F.relu(a)
    return quantize_k(torch.clamp(a, 0.0, 1.0), k)


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight (not its bias) is quantized to ``weight_bits`` in every forward.

    The stored parameters stay full precision (the STE updates them); ``state_dict`` keys are
    those of ``nn.Conv2d``. Build one from an existing conv with :meth:`from_float`.
    """

    def __init__(self, *args: object, weight_bits: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.weight_bits = _check_bits(weight_bits, "weight")

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_bits: int) -> QuantConv2d:
        """A quantized conv that shares ``conv``'s parameter objects (hooks are not carried)."""
        quant = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device="meta",  # no storage: the parameters below replace these
            weight_bits=weight_bits,
        )
        quant.weight = conv.weight
        quant.bias = conv.bias
        return quant.train(conv.training)

    def quantized_weight(self) -> Tensor:
        """The weight the forward uses: ``quantize_weight(self.weight, self.weight_bits)``."""
        return quantize_weight(self.weight, self.weight_bits)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight_bits={self.weight_bits}"


class QuantLinear(nn.Linear):
    """``nn.Linear`` whose weight (not its bias) is quantized to ``weight_bits`` in every forward.

    Same storage and ``state_dict`` keys as ``nn.Linear``; build one with :meth:`from_float`.
    """

    def __init__(self, *args: object, weight_bits: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.weight_bits = _check_bits(weight_bits, "weight")

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_bits: int) -> QuantLinear:
        """A quantized linear layer that shares ``linear``'s parameter objects."""
        quant = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device="meta",
            weight_bits=weight_bits,
        )
        quant.weight = linear.weight
        quant.bias = linear.bias
        return quant.train(linear.training)

    def quantized_weight(self) -> Tensor:
        """The weight the forward uses: ``quantize_weight(self.weight, self.weight_bits)``."""
        return quantize_weight(self.weight, self.weight_bits)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight_bits={self.weight_bits}"


class QuantReLU(nn.Module):
    """The activation quantizer that replaces a ReLU: :func:`quantize_activation` with ``bits``.

    Stateless (no parameters or buffers), so one module may serve several sites of a block.
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = _check_bits(bits, "activation")

    def forward(self, x: Tensor) -> Tensor:
        return quantize_activation(x, self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


_QUANT_MODULES = (QuantConv2d, QuantLinear, QuantReLU)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def _layers(model: nn.Module, kind: type[nn.Module]) -> list[tuple[str, nn.Module]]:
    """The ``kind`` modules of ``model`` (subclasses included), in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kind)]


def _swappable(layers: list[tuple[str, nn.Module]], kind: type[nn.Module]) -> list[nn.Module]:
    """``layers``, all of exact type ``kind``: a subclass may have a forward of its own, which a
    swap would silently drop."""
    for name, m in layers:
        if type(m) is not kind:
            raise ValueError(
                f"cannot quantize {name or 'the model'}: {type(m).__name__} subclasses "
                f"{kind.__name__}, and only plain {kind.__name__} layers are swapped"
            )
    return [m for _, m in layers]


def quantize_model(model: nn.Module, spec: QuantSpec | str) -> nn.Module:
    """Turn a full-precision network into its DoReFa-quantized student, in place.

    * every ``nn.Conv2d`` but the first becomes a :class:`QuantConv2d`, every ``nn.Linear``
      but the last a :class:`QuantLinear` (weight bits 32: none are swapped);
    * every ``nn.ReLU`` / ``nn.ReLU6`` module becomes a :class:`QuantReLU` (activation bits
      32: none are swapped, the plain ReLU stays);
    * biases and BatchNorms are untouched.

    "First" and "last" are in registration (``named_modules()``) order, which for every model
    of the zoo is the forward order: the stem conv that sees the images, the classifier. The
    swapped layers share the original parameter objects, so ``state_dict`` keys and values are
    unchanged (a checkpoint loads into either form) and an optimizer built before still holds
    the right parameters; hooks registered on a swapped layer are not carried over. ReLUs
    applied functionally (``F.relu``) cannot be found and would stay full precision: models
    must apply them as modules (see the module docstring).

    Args:
        model: the network, e.g. from :func:`augkd.models.create_model`.
        spec: the bit widths, a :class:`QuantSpec` or its string ``"wNaM"``.

    Returns:
        ``model`` itself, quantized, with ``model.quant`` set to the :class:`QuantSpec`
        (``str(model.quant)`` is the ``"wNaM"`` to record in manifests).

    Raises:
        ValueError: a bad ``spec``; ``model`` is already quantized; a layer to swap is a
            subclass of ``nn.Conv2d`` / ``nn.Linear`` whose own forward would be lost.
    """
    spec = spec if isinstance(spec, QuantSpec) else parse_quant(spec)
    done = [name for name, m in model.named_modules() if isinstance(m, _QUANT_MODULES)]
    previous = getattr(model, "quant", None)
    if isinstance(previous, QuantSpec) or done:
        shown = previous if isinstance(previous, QuantSpec) else f"layers {', '.join(done[:3])}"
        raise ValueError(
            f"model is already quantized ({shown}); quantize_model needs a full-precision model"
        )
    swaps: dict[int, nn.Module] = {}
    if spec.weight_bits != FULL_PRECISION:
        for conv in _swappable(_layers(model, nn.Conv2d)[1:], nn.Conv2d):
            swaps[id(conv)] = QuantConv2d.from_float(conv, spec.weight_bits)
        for linear in _swappable(_layers(model, nn.Linear)[:-1], nn.Linear):
            swaps[id(linear)] = QuantLinear.from_float(linear, spec.weight_bits)
    if spec.activation_bits != FULL_PRECISION:
        for m in model.modules():
            if isinstance(m, _ACTIVATIONS):
                swaps[id(m)] = QuantReLU(spec.activation_bits)
    # Swap through every parent, so a module registered under two names is swapped in both.
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # all names, duplicates too
            if id(child) in swaps:
                setattr(parent, name, swaps[id(child)])
    model = swaps.get(id(model), model)  # only a bare ReLU, having no parent, is swapped here
    model.quant = spec
    return model
