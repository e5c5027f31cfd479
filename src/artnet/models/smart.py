"""The SMART block: Spatiotemporal Appearance and Relation modelling (ARTNet, Wang et al. 2018).

Two branches look at the same input volume:

* appearance: a spatial-only ``1 x k x k`` convolution and BN (per-frame linear filtering);
* relation: a ``t x k x k`` convolution, BN, an element-wise square, cross-channel pooling of
  adjacent channel pairs with fixed weight 1/2, and BN. Squaring a space-time filter response
  yields products of pixels of different frames: the multiplicative interactions of an energy
  model, which respond to motion rather than to appearance.

Their outputs are concatenated ``[appearance, relation]``, rectified, and reduced back to
``out_channels`` by a ``1 x 1 x 1`` convolution. There is no BN after the reduction: in the
released pre-activation network the BN-ReLU that follows is the one after the residual sum.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def batch_norm(channels: int) -> nn.BatchNorm3d:
    """BN as in the Caffe 3D fork: eps 1e-5, running = 0.9 running + 0.1 batch."""
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class SquarePool(nn.Module):
    """Energy pooling: ``z_j = (u_2j^2 + u_2j+1^2) / 2`` over channel pairs; no parameters.

    Upstream computes this as a ``Power`` layer followed by a grouped ``1x1x1`` convolution with
    frozen weights 0.5. Arithmetic on the even and odd channels gives the same numbers without
    weights to freeze, decay or store.
    """

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[1] % 2:
            raise ValueError(f"SquarePool needs an even number of channels, got {u.shape[1]}")
        if torch.is_grad_enabled() and u.requires_grad:
            return _PairEnergy.apply(u)
        return _pair_energy(u)  # plain tensor ops: what tracing and export see


def _pair_energy(u: torch.Tensor) -> torch.Tensor:
    even, odd = u[:, 0::2], u[:, 1::2]
    return torch.mul(even, even).addcmul_(odd, odd).mul_(0.5)


class _PairEnergy(torch.autograd.Function):
    """The pooling with its gradient in one pass: ``dz_j / du_2j = u_2j`` (the 2 and the 1/2 cancel).

    Autograd's own chain (square, then the backward of the mean over a channel view) takes three
    passes over the full-width tensor and a copy, and is slower still for channels_last tensors.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return _pair_energy(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return (u.unflatten(1, (-1, 2)) * grad.unsqueeze(2)).flatten(1, 2)


class PointwiseConv3d(nn.Conv3d):
    """A ``1x1x1`` convolution (stride 1, no padding) computed as matrix products.

    A 1x1x1 convolution has no neighbourhood to reuse; on CPU, oneDNN runs it well below the
    speed of the plain matrix product it is, and further below in channels_last backward
    (benchmarks/model_speed.py times the block).
    ``forward(a, b)`` convolves the channel concatenation ``[a, b]`` without building it: one
    product per part with its slice of the weight, summed (SMART's fused branches). The module
    is an ``nn.Conv3d`` with its one weight and bias; only the forward takes another route to
    the same sum.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        weights = self.weight.flatten(1).split([x.shape[1] for x in parts], dim=1)
        batch, _, *volume = parts[0].shape
        # Out-of-place accumulation (bias first): FlopCounterMode, and so `artnet info`, counts
        # mm/bmm/addmm/baddbmm but not their in-place forms.
        if all(x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous() for x in parts):
            # (N, T, H, W, C) memory: a linear map of the channel axis of an (N*T*H*W, C) matrix.
            y = self.bias
            for x, weight in zip(parts, weights):
                x = x.permute(0, 2, 3, 4, 1).reshape(-1, x.shape[1])
                y = x @ weight.T if y is None else torch.addmm(y, x, weight.T)
            return y.view(batch, *volume, -1).permute(0, 4, 1, 2, 3)
        y = None if self.bias is None else self.bias[:, None]
        for x, weight in zip(parts, weights):
            x, weight = x.flatten(2), weight.expand(batch, -1, -1)  # (N, C, T*H*W), (N, out, C)
            y = torch.bmm(weight, x) if y is None else torch.baddbmm(y, weight, x)
        return y.unflatten(2, volume)


class SMART(nn.Module):
    """A convolution builder with the interface of ``nn.Conv3d(in, out, kernel, stride)``.

    Args:
        in_channels, out_channels: as for a convolution.
        kernel: ``(t, k, k)`` of the relation branch; the appearance branch uses ``(1, k, k)``.
        stride: applied identically in both branches.
        bias: bias on the three convolutions (the release has none in conv1 and conv2_x).
        appearance: ``False`` drops the appearance branch: the relation-only ablation
            ("Relation-ResNet18" in the paper's Table 2).
        reduction: ``True`` ends with the ``1x1x1`` reduction conv (as SMART).
            ``False`` is only valid without appearance: the relation conv is made twice as wide
            so the pooled energy already has ``out_channels``, and ``ReLU(BN(z))`` is the output
            (the paper's Fig. 2b taken literally).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (3, 3, 3),
        stride: int | tuple[int, int, int] = 1,
        bias: bool = False,
        appearance: bool = True,
        reduction: bool = True,
    ):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"SMART needs an even number of output channels, got {out_channels}")
        if appearance and not reduction:
            raise ValueError("SMART with an appearance branch needs the reduction convolution")
        t, kh, kw = kernel
        spatial_pad = (kh // 2, kw // 2)
        self.appearance = self.appearance_bn = self.reduce = None
        if appearance:
            self.appearance = nn.Conv3d(in_channels, out_channels, (1, kh, kw), stride, (0, *spatial_pad), bias=bias)
            self.appearance_bn = batch_norm(out_channels)
        relation_channels = out_channels if reduction else 2 * out_channels
        self.relation = nn.Conv3d(in_channels, relation_channels, kernel, stride, (t // 2, *spatial_pad), bias=bias)
        self.relation_bn = batch_norm(relation_channels)
        self.energy_pool = SquarePool()
        self.energy_bn = batch_norm(relation_channels // 2)
        if reduction:
            fused = relation_channels // 2 + (out_channels if appearance else 0)
            self.reduce = PointwiseConv3d(fused, out_channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.energy_bn(self.energy_pool(self.relation_bn(self.relation(x)))), inplace=True)
        if self.reduce is None:
            return z
        if self.appearance is None:
            return self.reduce(z)
        # reduce(relu(cat([appearance, z]))), without materialising the concatenation
        return self.reduce(F.relu(self.appearance_bn(self.appearance(x)), inplace=True), z)
