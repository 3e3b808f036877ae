"""vae/kernels.py against PyTorch's own kernels: values, gradients (also by finite differences in
float64), every stride/padding/kernel the model uses and a few it does not."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vae.kernels import StridedConv, StridedConvTranspose, bce_per_image, conv_transpose_by_phases, conv_weight_grad

# (in, out, kernel, stride, padding, input size): the model's layers first, then others.
TRANSPOSED = [(64, 16, 3, 2, 0, 3), (16, 4, 4, 2, 1, 7), (4, 1, 4, 2, 1, 14),
              (3, 5, 5, 2, 2, 6), (2, 3, 3, 3, 1, 5), (4, 2, 2, 2, 0, 4)]
CONVS = [(1, 4, 4, 2, 1, 28), (4, 16, 4, 2, 1, 14), (16, 64, 3, 2, 0, 7), (3, 5, 5, 2, 2, 11), (2, 3, 3, 3, 1, 10)]


def _close(a, b, tol=1e-5):
    return (a - b).abs().max() <= tol * b.abs().max().clamp(min=1.0)


def _assert_same_values_and_gradients(out, expected, inputs):
    g = torch.randn_like(expected)
    for got, want in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(expected, inputs, g)):
        assert _close(got, want)
    assert _close(out, expected)


@pytest.mark.parametrize("c_in,c_out,k,s,p,size", TRANSPOSED)
def test_conv_transpose_by_phases_equals_conv_transpose2d(c_in, c_out, k, s, p, size):
    torch.manual_seed(0)
    x, w = torch.randn(6, c_in, size, size), torch.randn(c_in, c_out, k, k)
    expected = F.conv_transpose2d(x, w, stride=s, padding=p)
    out = conv_transpose_by_phases(x, w, s, p, expected.shape[-1])
    assert out.shape == expected.shape
    assert _close(out, expected)


@pytest.mark.parametrize("c_in,c_out,k,s,p,size", CONVS)
def test_weight_grad_equals_autograd(c_in, c_out, k, s, p, size):
    torch.manual_seed(1)
    x = torch.randn(5, c_in, size, size)
    w = torch.randn(c_out, c_in, k, k, requires_grad=True)
    y = F.conv2d(x, w, stride=s, padding=p)
    g = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, w, g)
    assert _close(conv_weight_grad(x, g, k, s, p), expected)


@pytest.mark.parametrize("c_in,c_out,k,s,p,size", CONVS)
def test_strided_conv_values_and_gradients(c_in, c_out, k, s, p, size):
    torch.manual_seed(2)
    x = torch.randn(4, c_in, size, size, requires_grad=True)
    w = torch.randn(c_out, c_in, k, k, requires_grad=True)
    expected = F.conv2d(x, w, stride=s, padding=p)
    _assert_same_values_and_gradients(StridedConv.apply(x, w, s, p), expected, (x, w))


@pytest.mark.parametrize("c_in,c_out,k,s,p,size", TRANSPOSED)
def test_strided_conv_transpose_values_and_gradients(c_in, c_out, k, s, p, size):
    torch.manual_seed(3)
    x = torch.randn(4, c_in, size, size, requires_grad=True)
    w = torch.randn(c_in, c_out, k, k, requires_grad=True)
    expected = F.conv_transpose2d(x, w, stride=s, padding=p)
    _assert_same_values_and_gradients(StridedConvTranspose.apply(x, w, s, p, expected.shape[-1]), expected, (x, w))


def test_gradients_pass_finite_difference_checks_in_float64():
    torch.manual_seed(4)
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: StridedConv.apply(x, w, 2, 1), (x, w))
    wt = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: StridedConvTranspose.apply(x, w, 2, 1, 14), (x, wt))


def test_bce_per_image_matches_pytorch_even_for_extreme_logits():
    torch.manual_seed(5)
    logits = torch.cat([torch.randn(3, 1, 28, 28) * 4, torch.full((1, 1, 28, 28), 80.0),
                        torch.full((1, 1, 28, 28), -80.0)]).requires_grad_()
    target = torch.rand(5, 1, 28, 28).round()
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    got = bce_per_image(logits, target)
    assert got.shape == (5,)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-3)
    weights = torch.arange(1.0, 6.0)
    (g_got,) = torch.autograd.grad((got * weights).sum(), logits)
    (g_want,) = torch.autograd.grad((expected * weights).sum(), logits)
    assert torch.allclose(g_got, g_want, atol=1e-6)
