"""SMART's fast formulations compute exactly what the plain ones do: values, gradients, counted operations."""

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from artnet.models import SMART, SquarePool
from artnet.models.smart import PointwiseConv3d


def reference_pool(u):
    return u.square().unflatten(1, (u.shape[1] // 2, 2)).mean(dim=2)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_square_pool_gradient_is_autograds(memory_format):
    u = torch.randn(2, 6, 3, 4, 5).to(memory_format=memory_format)
    grad = torch.randn(2, 3, 3, 4, 5)
    fast, slow = u.clone().requires_grad_(), u.clone().requires_grad_()
    SquarePool()(fast).backward(grad)
    reference_pool(slow).backward(grad)
    torch.testing.assert_close(fast.grad, slow.grad, rtol=0, atol=0)


def test_square_pool_passes_gradcheck_twice():
    u = torch.randn(1, 4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SquarePool(), (u,))
    assert torch.autograd.gradgradcheck(SquarePool(), (u,))


def test_square_pool_without_autograd_gives_the_same_values():
    u = torch.randn(2, 8, 3, 4, 5, requires_grad=True)
    with torch.no_grad():
        plain = SquarePool()(u)
    torch.testing.assert_close(plain, SquarePool()(u))
    torch.testing.assert_close(plain, reference_pool(u.detach()))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_conv_of_parts_is_the_convolution_of_their_concatenation(memory_format, bias):
    conv = PointwiseConv3d(10, 6, bias=bias)
    if bias:
        torch.nn.init.normal_(conv.bias)
    a = torch.randn(2, 4, 3, 5, 5).to(memory_format=memory_format).requires_grad_()
    b = torch.randn(2, 6, 3, 5, 5).to(memory_format=memory_format).requires_grad_()
    y = conv(a, b)
    expected = F.conv3d(torch.cat([a, b], dim=1), conv.weight, conv.bias)
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(y)
    fast = torch.autograd.grad(y, [a, b, conv.weight], grad)
    slow = torch.autograd.grad(expected, [a, b, conv.weight], grad)
    for ours, theirs in zip(fast, slow):
        torch.testing.assert_close(ours, theirs)
    assert list(conv.state_dict()) == (["weight", "bias"] if bias else ["weight"])
    torch.testing.assert_close(conv(torch.cat([a, b], dim=1)), expected)  # one part: a plain 1x1x1 convolution


def test_operation_count_of_a_smart_block_is_its_three_convolutions():
    block = SMART(8, 6, (3, 3, 3), stride=1, bias=True)
    x = torch.randn(2, 8, 4, 5, 5)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        block(x)
    positions = 2 * 4 * 5 * 5
    macs = positions * 6 * (8 * 9 + 8 * 27 + (6 + 3))  # appearance 1x3x3, relation 3x3x3, reduction 1x1x1
    assert counter.get_total_flops() == 2 * macs
