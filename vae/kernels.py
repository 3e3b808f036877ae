"""Faster CPU arithmetic for the report's layers: the same weights and the same maths, other kernels.

PyTorch's CPU kernels are slow at one thing this network does: spreading a small map onto a
larger one through a strided transposed convolution with a 4×4 kernel and few channels (the
decoder's last two layers, and the input gradient of the encoder's second). That costs 4–7 ms
per 256-image batch, while an ordinary stride-1 convolution of the same size takes under 1.5 ms.
So, for those three layers only (scripts/bench_kernels.py measures each layer both ways; on the
others PyTorch's own kernels are as fast or faster):

- `conv_transpose_by_phases` computes a stride-s transposed convolution as one stride-1
  convolution that produces the s×s output phases as channels, then `pixel_shuffle` interleaves
  them. Each output pixel gets exactly the same sum of products as in `conv_transpose2d`.
- `StridedConv` and `StridedConvTranspose` are autograd functions whose forward and backward
  each pick the fast kernel; the weight gradient is one convolution of the input with the
  output gradient (batch as channels).
- `bce_per_image` is binary cross-entropy with logits summed per image, using log(sigmoid(|l|))
  in place of log1p(exp(-|l|)): PyTorch's CPU log1p is not vectorised and cost 2 ms per batch.

tests/test_kernels.py checks every function against PyTorch's own, values and gradients.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.cache
def _phase_taps(kernel: int, stride: int, padding: int) -> tuple[torch.Tensor, int]:
    """Which of the kernel's taps each (phase a, b; window offset i, j) uses; computed once per layer.

    Output pixel o = stride*m + a of a transposed conv sums input[m + d] * w[t] over the taps t
    with stride*(m + d) + t - padding = o, i.e. d = (a + padding - t) / stride. The offsets d of
    all phases span one window. Returns (flat tap indices (stride, stride, window, window) into the
    kernel's k*k taps, with k*k where a phase uses no tap; the window's first offset).
    """
    pairs = {(a, (a + padding - t) // stride): t
             for a in range(stride) for t in range(kernel) if (a + padding - t) % stride == 0}
    first = min(d for _, d in pairs)
    window = max(d for _, d in pairs) - first + 1
    taps = torch.full((stride, window), kernel, dtype=torch.long)  # 1-D: tap per (phase, offset)
    for (a, d), t in pairs.items():
        taps[a, d - first] = t
    rows = taps.view(stride, 1, window, 1).expand(stride, stride, window, window)
    cols = taps.view(1, stride, 1, window).expand(stride, stride, window, window)
    zero_slot = kernel * kernel
    return torch.where((rows == kernel) | (cols == kernel), zero_slot, rows * kernel + cols), first


def _phase_weight(weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """(in, out, k, k) transposed-conv weight → (out*stride², in, window, window) conv weight."""
    c_in, c_out, k, _ = weight.shape
    flat, _ = _phase_taps(k, stride, padding)
    window = flat.shape[-1]
    padded = torch.cat([weight.flatten(2), weight.new_zeros(c_in, c_out, 1)], 2)  # (in, out, k*k + 1)
    phased = padded[:, :, flat]  # (in, out, s, s, window, window)
    # pixel_shuffle reads channel c*s*s + a*s + b as output channel c at phase (a, b).
    return phased.permute(1, 2, 3, 0, 4, 5).reshape(c_out * stride * stride, c_in, window, window)


def conv_transpose_by_phases(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                             out_size: int) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride, padding) cropped to out_size, as conv2d + pixel_shuffle."""
    flat, first = _phase_taps(weight.shape[-1], stride, padding)
    window = flat.shape[-1]
    size = x.shape[-1]
    phase_size = -(-out_size // stride)
    before = -first  # F.pad crops where this is negative
    after = phase_size + window - 1 - size - before
    phases = F.conv2d(F.pad(x, (before, after, before, after)), _phase_weight(weight, stride, padding))
    return F.pixel_shuffle(phases, stride)[:, :, :out_size, :out_size]


def conv_weight_grad(big: torch.Tensor, small_grad: torch.Tensor, kernel: int, stride: int,
                     padding: int) -> torch.Tensor:
    """Gradient of <small_grad, conv2d(big, w, stride, padding)> with respect to w: (out, in, k, k)."""
    grad = F.conv2d(big.transpose(0, 1), small_grad.transpose(0, 1), padding=padding, dilation=stride)
    return grad[:, :, :kernel, :kernel].transpose(0, 1)


def _in_layout_of(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t in like's memory layout: an elementwise backward (LeakyReLU's) runs ~25× slower when its
    gradient and its input differ in layout (NCHW against channels-last)."""
    channels_last = not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last)
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class StridedConv(torch.autograd.Function):
    """conv2d(x, weight, stride, padding) without bias."""

    @staticmethod
    def forward(ctx, x, weight, stride: int, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _in_layout_of(conv_transpose_by_phases(grad, weight, s, p, x.shape[-1]), x)
        grad_w = conv_weight_grad(x, grad, weight.shape[-1], s, p) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None


class StridedConvTranspose(torch.autograd.Function):
    """conv_transpose2d(x, weight, stride, padding) without bias, out_size × out_size."""

    @staticmethod
    def forward(ctx, x, weight, stride: int, padding: int, out_size: int):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return conv_transpose_by_phases(x, weight, stride, padding, out_size)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        grad = grad.contiguous()
        grad_x = _in_layout_of(F.conv2d(grad, weight, stride=s, padding=p), x) if ctx.needs_input_grad[0] else None
        grad_w = conv_weight_grad(grad, x, weight.shape[-1], s, p) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None, None


def strided_conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return StridedConv.apply(x, conv.weight, conv.stride[0], conv.padding[0])


def strided_conv_transpose(x: torch.Tensor, conv: torch.nn.ConvTranspose2d, out_size: int) -> torch.Tensor:
    return StridedConvTranspose.apply(x, conv.weight, conv.stride[0], conv.padding[0], out_size)


class _BcePerImage(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        ctx.save_for_backward(logits, target)
        # max(l, 0) - x*l + log(1 + e^-|l|), with log(1 + e^-|l|) = -log(sigmoid(|l|)).
        per_pixel = logits.clamp(min=0) - target * logits - torch.sigmoid(logits.abs()).log_()
        return per_pixel.flatten(1).sum(1)

    @staticmethod
    def backward(ctx, grad):
        logits, target = ctx.saved_tensors
        grad_logits = (torch.sigmoid(logits) - target) * grad.view(-1, *([1] * (logits.dim() - 1)))
        return grad_logits, None


def bce_per_image(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, summed over each image's pixels: (N,). No target gradient."""
    return _BcePerImage.apply(logits, target)
