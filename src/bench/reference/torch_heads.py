"""GeM and NetVLAD in PyTorch, written from their definitions, for the references.
Parameter names as vgl's heads use them: GeM `p`; NetVLAD `conv.weight`, `centroids`."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class GeM(nn.Module):
    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x):
        x = F.normalize(x, p=2, dim=1)  # each local feature, over channels
        y = F.avg_pool2d(x.clamp(min=self.eps).pow(self.p), x.shape[-2:]).pow(1.0 / self.p)
        return F.normalize(y.flatten(1), p=2, dim=1)


class NetVLAD(nn.Module):
    def __init__(self, k, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, k, 1, bias=False)
        self.centroids = nn.Parameter(torch.rand(k, dim))

    def forward(self, x):
        n, c = x.shape[:2]
        x = F.normalize(x, p=2, dim=1)
        a = F.softmax(self.conv(x).view(n, self.conv.out_channels, -1), dim=1)  # [N, K, HW]
        xf = x.view(n, c, -1)  # [N, C, HW]
        v = torch.bmm(a, xf.transpose(1, 2)) - a.sum(-1).unsqueeze(-1) * self.centroids  # [N, K, C]
        v = F.normalize(v, p=2, dim=2)
        return F.normalize(v.reshape(n, -1), p=2, dim=1)
