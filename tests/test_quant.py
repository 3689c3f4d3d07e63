"""DoReFa-quantized students: the quantizers' levels and gradients, the model rewrite, training."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from augkd.models import MODELS, create_model, list_models
from augkd.models.quant import (
    QuantConv2d,
    QuantLinear,
    QuantReLU,
    QuantSpec,
    parse_quant,
    quantize_activation,
    quantize_k,
    quantize_model,
    quantize_weight,
)

W2_LEVELS = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])

# One architecture per family (each family is one module with its own forward code), the
# cheapest of each, and whether every conv after the stem reads a post-activation map (so with
# 1-bit activations its input is binary). ShuffleV2 (pointwise after a depthwise-BN) and
# MobileNetV2 (expansion after a linear bottleneck) also have convs that read un-rectified maps.
FAMILIES = {
    "resnet8": True,
    "wrn_16_1": True,
    "vgg8": True,
    "ResNet50": True,
    "MobileNetV2": False,
    "ShuffleV1": True,
    "ShuffleV2": False,
}
RELU_FUNCTIONS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_"}


class _RecordCalls(TorchFunctionMode):
    """Records every torch function the forward calls, with its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple, dict]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls.append((getattr(func, "__name__", repr(func)), args, kwargs))
        return func(*args, **kwargs)

    def named(self, *names: str) -> list[tuple[tuple, dict]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name in names]


def _record_forward(model: nn.Module, x: torch.Tensor) -> _RecordCalls:
    with torch.no_grad(), _RecordCalls() as record:
        model(x)
    return record


def _on_levels(values: torch.Tensor, levels: torch.Tensor) -> bool:
    return bool(torch.isclose(values.reshape(-1, 1), levels, rtol=0, atol=1e-6).any(1).all())


def _is_two_bit(weight: torch.Tensor) -> bool:
    """All values in {-1, -1/3, 1/3, 1}; elementwise, cheap on ResNet50's 23M weights."""
    magnitude = weight.abs()
    return bool((((magnitude - 1 / 3).abs() <= 1e-6) | (magnitude == 1)).all())


def _small_eval(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=10, in_channels=1).eval()


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, weight, activation",
    [("w2a1", 2, 1), ("w32a32", 32, 32), ("w4a8", 4, 8), ("w1a32", 1, 32), ("w8a2", 8, 2)],
)
def test_parse_round_trips_the_canonical_string(text, weight, activation):
    spec = parse_quant(text)
    assert spec == QuantSpec(weight_bits=weight, activation_bits=activation)
    assert str(spec) == text


@pytest.mark.parametrize(
    "text, shown",
    [
        ("w9a1", "weight bits 9"),
        ("w2a16", "activation bits 16"),
        ("w0a1", "weight bits 0"),
        ("w2", "not of the form 'wNaM'"),
        ("2a1", "not of the form 'wNaM'"),
        ("", "not of the form 'wNaM'"),
        ("W2A1", "not of the form 'wNaM'"),
        ("w2a1 ", "not of the form 'wNaM'"),
        ("w-2a1", "not of the form 'wNaM'"),
        (21, "must be a string"),
    ],
)
def test_parse_errors_name_the_value_and_the_form(text, shown):
    with pytest.raises(ValueError, match="1..8 or 32") as info:
        parse_quant(text)
    assert shown in str(info.value)
    assert repr(text) in str(info.value)


def test_spec_is_frozen_and_validates_its_fields():
    spec = QuantSpec(2, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.weight_bits = 4
    for bad in (0, 9, 16, True, 2.0):
        with pytest.raises(ValueError, match="weight bits must be 1..8 or 32"):
            QuantSpec(bad, 1)
    with pytest.raises(ValueError, match="activation bits must be 1..8 or 32, got 33"):
        QuantSpec(2, 33)


# --- the quantizers --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_quantize_k_is_exactly_on_the_grid_with_identity_gradient(k):
    x = torch.rand(10_000, generator=torch.Generator().manual_seed(k), requires_grad=True)
    q = quantize_k(x, k)
    levels = 2**k - 1
    assert torch.equal(q, torch.round(x.detach() * levels) / levels)  # bit for bit, no ulp off
    assert len(torch.unique(q)) == 2**k
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_full_precision_bits_change_nothing():
    x = torch.randn(64)
    assert quantize_k(x, 32) is x
    assert quantize_weight(x, 32) is x
    assert torch.equal(quantize_activation(x, 32), F.relu(x))


def test_one_bit_activations_are_exactly_zero_or_one():
    a = torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(0)) * 2
    q = quantize_activation(a, 1)
    assert set(torch.unique(q).tolist()) == {0.0, 1.0}
    assert torch.equal(q, (a >= 0.5).float())  # round(clip(a, 0, 1)), ties to even at 0.5


def test_two_bit_activations_take_four_levels_in_unit_interval():
    a = torch.linspace(-1, 2, 301)
    q = quantize_activation(a, 2)
    assert torch.allclose(torch.unique(q), torch.tensor([0, 1 / 3, 2 / 3, 1]))


def test_activation_gradient_is_one_inside_the_clip_and_zero_outside():
    a = torch.tensor([-2.0, -0.3, 0.05, 0.3, 0.6, 0.95, 1.2, 3.0], requires_grad=True)
    for k in (1, 2, 8):
        a.grad = None
        quantize_activation(a, k).sum().backward()
        assert a.grad.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_two_bit_weights_take_the_four_levels_and_the_largest_maps_to_one():
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.1
    q = quantize_weight(w, 2)
    assert len(torch.unique(q)) == 4 and _on_levels(q, W2_LEVELS)
    assert q.flatten()[w.abs().argmax()].abs().item() == 1.0
    assert torch.equal(torch.sign(q), torch.sign(w))  # no level is 0, signs are kept


def test_weight_gradient_is_straight_through_the_rounding_only():
    """k > 1: the gradient is that of the un-rounded tanh normalisation, 2 r(w) - 1."""
    w = torch.randn(16, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
    upstream = torch.randn(16, 8, generator=torch.Generator().manual_seed(3))
    (quantize_weight(w, 2) * upstream).sum().backward()
    ste_grad = w.grad.clone()
    w.grad = None
    t = torch.tanh(w)
    ((2 * (t / (2 * t.abs().max()) + 0.5) - 1) * upstream).sum().backward()
    assert torch.allclose(ste_grad, w.grad, atol=1e-6)


def test_one_bit_weights_are_plus_minus_mean_abs_with_identity_gradient():
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    w.data[0, 0, 0, 0] = 0.0  # zero goes to +E: still exactly two levels
    q = quantize_weight(w, 1)
    scale = w.detach().abs().mean()
    assert torch.equal(q.detach().abs(), torch.full_like(q, scale.item()))
    assert torch.equal(q.detach() > 0, w.detach() >= 0)
    upstream = torch.randn(w.shape, generator=torch.Generator().manual_seed(5))
    (q * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


def test_quantizers_reject_unsupported_bits():
    x = torch.rand(4)
    for fn in (quantize_k, quantize_weight, quantize_activation):
        with pytest.raises(ValueError, match="bits must be 1..8 or 32, got 16"):
            fn(x, 16)
    with pytest.raises(ValueError, match="weight bits"):
        QuantConv2d(2, 2, 3, weight_bits=0)
    with pytest.raises(ValueError, match="activation bits"):
        QuantReLU(12)


def test_quant_layers_compute_with_the_quantized_weight_and_full_precision_bias():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    linear = nn.Linear(6, 4)
    qconv, qlinear = QuantConv2d.from_float(conv, 2), QuantLinear.from_float(linear, 2)
    assert qconv.weight is conv.weight and qconv.bias is conv.bias
    assert qlinear.weight is linear.weight and qlinear.bias is linear.bias
    x, v = torch.randn(2, 3, 5, 5), torch.randn(2, 6)
    expected = F.conv2d(x, quantize_weight(conv.weight, 2), conv.bias, padding=1)
    assert torch.equal(qconv(x), expected)
    assert torch.equal(qlinear(v), F.linear(v, quantize_weight(linear.weight, 2), linear.bias))
    assert "weight_bits=2" in repr(qconv) and "weight_bits=2" in repr(qlinear)


# --- the model rewrite ----------------------------------------------------------------------


def test_families_cover_every_registered_model():
    """A new family added to the zoo must be added to FAMILIES (and so to the checks below)."""
    covered = {MODELS.get(name).__module__ for name in FAMILIES}
    assert {MODELS.get(name).__module__ for name in list_models()} == covered


@pytest.mark.parametrize("name", list(FAMILIES))
def test_quantized_forward_uses_quantized_weights_and_activations_only_where_due(name):
    """Read off the forward itself: which weights each conv / linear / BN call receives, the
    conv inputs, and that no functional ReLU is left at full precision."""
    model = _small_eval(name)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    params = {id(p) for p in model.parameters()}
    fp_record = _record_forward(model, x)
    fp_convs = fp_record.named("conv2d")
    stem_weight = fp_convs[0][0][1]
    classifier_weight = fp_record.named("linear")[-1][0][1]

    quantize_model(model, "w2a1")
    record = _record_forward(model, x)
    functional = [name for name, _, _ in record.calls if name in RELU_FUNCTIONS]
    assert not functional, f"ReLUs applied functionally, not as modules: {functional}"
    convs = record.named("conv2d")
    assert len(convs) == len(fp_convs)
    assert convs[0][0][1] is stem_weight  # the stem conv: the full-precision parameter itself
    binary_inputs = []
    for args, _ in convs[1:]:
        conv_input, weight, bias = args[:3]
        assert id(weight) not in params and _is_two_bit(weight)
        assert bias is None or id(bias) in params  # biases stay full precision
        binary_inputs.append(bool(((conv_input == 0) | (conv_input == 1)).all()))
    assert any(binary_inputs)
    if FAMILIES[name]:
        assert all(binary_inputs)
    assert record.named("linear")[-1][0][1] is classifier_weight
    batch_norms = record.named("batch_norm")
    assert batch_norms
    for _, kwargs in batch_norms:
        assert id(kwargs["weight"]) in params and id(kwargs["bias"]) in params
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())


@pytest.mark.parametrize("name", ["resnet8", "vgg8", "ShuffleV2"])
def test_first_conv_and_last_linear_are_untouched(name):
    model = _small_eval(name)
    reference = copy.deepcopy(model)
    names = {id(m): n for n, m in model.named_modules()}
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(names[id(m)]))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    x = torch.randn(2, 1, 8, 8)
    model(x)
    for hook in hooks:
        hook.remove()
    first, last = order[0], order[-1]
    quantize_model(model, "w2a1")
    for layer_name, cls, shape in ((first, nn.Conv2d, (2, 1, 8, 8)), (last, nn.Linear, None)):
        layer, ref = model.get_submodule(layer_name), reference.get_submodule(layer_name)
        assert type(layer) is cls
        inputs = torch.randn(shape or (2, layer.in_features))
        assert torch.equal(layer(inputs), ref(inputs))
    quantized = [n for n, m in model.named_modules() if isinstance(m, QuantConv2d)]
    assert sorted(quantized) == sorted(set(order) - {first, last})


def test_batchnorms_and_biases_stay_full_precision():
    model = _small_eval("vgg8")  # VGG's convs have biases
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    biases = {n: p for n, p in model.named_parameters() if n.endswith("bias")}
    quantize_model(model, "w2a1")
    assert {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)} == bns
    assert all(type(m) is nn.BatchNorm2d for m in bns.values())
    assert dict((n, p) for n, p in model.named_parameters() if n.endswith("bias")) == biases
    conv = model.block1[0]
    assert isinstance(conv, QuantConv2d) and conv.bias is biases["block1.0.bias"]


def test_state_dict_keys_and_parameters_are_kept_and_checkpoints_load_either_way():
    model = _small_eval("resnet8")
    full = copy.deepcopy(model)
    before = model.state_dict()
    param_ids = [id(p) for p in model.parameters()]
    quantize_model(model, "w2a1")
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert [id(p) for p in model.parameters()] == param_ids  # an existing optimizer still fits

    fresh = quantize_model(_small_eval("resnet8"), "w2a1")
    fresh.load_state_dict(full.state_dict())  # strict: a full-precision checkpoint loads
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(fresh(x), model(x))
    plain = create_model("resnet8", num_classes=10, in_channels=1).eval()
    plain.load_state_dict(model.state_dict())  # and a quantized student's loads into a plain one
    assert torch.equal(plain(x), full(x))


def test_model_records_its_spec_and_refuses_a_second_quantization():
    model = _small_eval("resnet8")
    assert quantize_model(model, QuantSpec(4, 8)) is model
    assert model.quant == QuantSpec(4, 8) and str(model.quant) == "w4a8"
    with pytest.raises(ValueError, match=r"already quantized \(w4a8\)"):
        quantize_model(model, "w2a1")
    with pytest.raises(ValueError, match="weight bits 9"):
        quantize_model(_small_eval("resnet8"), "w9a1")


def test_w32a32_leaves_the_network_as_it_was():
    model = _small_eval("MobileNetV2")
    reference = copy.deepcopy(model)
    quantize_model(model, "w32a32")
    assert str(model.quant) == "w32a32"
    assert [type(m) for m in model.modules()] == [type(m) for m in reference.modules()]
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), reference(x))


def test_mixed_bits_swap_only_their_own_layers():
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU6(), nn.Linear(8, 8), nn.Linear(8, 3)
    )
    quantize_model(mlp, "w3a32")  # weights only: every linear but the last; ReLUs stay
    assert [type(m) for m in mlp] == [
        QuantLinear,
        nn.ReLU,
        QuantLinear,
        nn.ReLU6,
        QuantLinear,
        nn.Linear,
    ]
    assert mlp[0].weight_bits == 3
    mlp = quantize_model(copy.deepcopy(nn.Sequential(nn.Linear(4, 8), nn.ReLU())), "w32a2")
    assert [type(m) for m in mlp] == [nn.Linear, QuantReLU] and mlp[1].bits == 2


def test_custom_subclass_layers_are_refused_not_silently_swapped():
    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), MyConv(4, 4, 3))
    with pytest.raises(ValueError, match="MyConv subclasses Conv2d"):
        quantize_model(model, "w2a1")


def test_one_bit_activation_stages_are_the_quantized_activations():
    x = torch.randn(2, 1, 8, 8)
    out = quantize_model(_small_eval("resnet8"), "w2a1")(x, features=True)
    for stage in out.stages:
        assert set(torch.unique(stage).tolist()) <= {0.0, 1.0}
    assert torch.allclose(out.pooled, out.stages[-1].mean((2, 3)))
    # WRN's first three stages are un-rectified sums in the network; the copy handed out as a
    # feature keeps its plain ReLU (not part of the network); the pooled stage is quantized.
    out = quantize_model(_small_eval("wrn_16_1"), "w2a1")(x, features=True)
    assert set(torch.unique(out.stages[-1]).tolist()) <= {0.0, 1.0}
    assert all(bool((s >= 0).all()) for s in out.stages)


def test_autocast_bfloat16_forward():
    model = quantize_model(_small_eval("resnet8"), "w2a1")
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = model(torch.randn(2, 1, 8, 8), features=True)
    assert out.logits.dtype == torch.bfloat16 and bool(out.logits.isfinite().all())
    assert set(torch.unique(out.stages[-1].float()).tolist()) <= {0.0, 1.0}


def test_w2a1_student_trains_on_digits(digits):
    """A plain SGD loop (not the project's trainer): the STE lets every parameter learn."""
    torch.manual_seed(0)
    model = quantize_model(create_model("resnet8", num_classes=10, in_channels=1), "w2a1")
    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    x = (digits.train_images[:256].float() / 255 - mean) / std
    y = digits.train_labels[:256]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if not losses:
            for name, p in model.named_parameters():
                assert p.grad is not None and bool(p.grad.isfinite().all()), name
                assert bool(p.grad.ne(0).any()), f"no gradient reaches {name}"
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.15, losses
