#!/usr/bin/env python3
"""PyTorch side of `vgl bench engine`: ResNet-18 layer3 (two BasicBlocks, 128->256, stride 2) on a
1x128x60x80 input (the conv3 map of a 480x640 image). Prints JSON timings in ms (median of N)."""
import json
import sys
import time

import torch
import torch.nn as nn

from torch_resnet import layer

threads, iters = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


stage = layer(128, 256, 2)
opt = torch.optim.Adam(stage.parameters(), lr=1e-5)
x = torch.randn(1, 128, 60, 80)


def train_step():
    opt.zero_grad()
    stage(x).pow(2).mean().backward()
    opt.step()


def forward():
    with torch.inference_mode():
        stage(x)


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


stage.train()
train = median_ms(train_step)
stage.eval()
fwd = median_ms(forward)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "train_ms": train, "forward_ms": fwd}))
