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
    frozen weights 0.5. A reshape and a mean give the same numbers without weights to freeze,
    decay or store.
    """

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[1] % 2:
            raise ValueError(f"SquarePool needs an even number of channels, got {u.shape[1]}")
        return u.square().unflatten(1, (u.shape[1] // 2, 2)).mean(dim=2)


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
            self.reduce = nn.Conv3d(fused, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.energy_bn(self.energy_pool(self.relation_bn(self.relation(x))))
        if self.appearance is not None:
            z = torch.cat([self.appearance_bn(self.appearance(x)), z], dim=1)
        z = F.relu(z, inplace=True)
        return self.reduce(z) if self.reduce is not None else z
