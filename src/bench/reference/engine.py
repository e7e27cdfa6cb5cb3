#!/usr/bin/env python3
"""PyTorch side of `vgl bench engine`: ResNet-18 layer3 (two BasicBlocks, 128->256, stride 2) on a
1x128x60x80 input (the conv3 map of a 480x640 image). Prints JSON timings in ms (median of N)."""
import json
import sys
import time

import torch
import torch.nn as nn

threads, iters = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


layer = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256, 1))
opt = torch.optim.Adam(layer.parameters(), lr=1e-5)
x = torch.randn(1, 128, 60, 80)


def train_step():
    opt.zero_grad()
    layer(x).pow(2).mean().backward()
    opt.step()


def forward():
    with torch.inference_mode():
        layer(x)


def median_ms(fn):
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


layer.train()
train = median_ms(train_step)
layer.eval()
fwd = median_ms(forward)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "train_ms": train, "forward_ms": fwd}))
