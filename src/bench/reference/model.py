#!/usr/bin/env python3
"""PyTorch side of `vgl bench model`: the seed workload, ResNet-18 conv4 + NetVLAD (64 clusters).

- train_ms: one training step on one triplet tuple (12 images 480x640: query, positive, 10 negatives),
  triplet margin 0.1 (plain L2, as torch.nn.TripletMarginLoss), Adam lr 1e-5, conv1..layer2 frozen.
- extract_ms_per_image: eager descriptor extraction in eval mode under inference_mode (batch of B).
Random weights: timing does not depend on them. Prints JSON (medians).
Usage: model.py THREADS ITERS HEIGHT WIDTH EXTRACT_BATCH
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_heads import NetVLAD
from torch_resnet import layer

threads, iters, H, W, B = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(threads)
torch.manual_seed(0)


backbone = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         layer(64, 64, 1), layer(64, 128, 2), layer(128, 256, 2))
for m in list(backbone.children())[:6]:
    for p in m.parameters():
        p.requires_grad = False
model = nn.Sequential(backbone, NetVLAD(64, 256))
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
criterion = nn.TripletMarginLoss(margin=0.1, p=2, reduction="sum")
images = torch.randn(12, 3, H, W)


def train_step():
    model.train()
    for m in list(backbone.children())[:6]:
        m.eval()
    opt.zero_grad()
    d = model(images)
    q, p, negs = d[0:1], d[1:2], d[2:]
    loss = criterion(q.expand_as(negs), p.expand_as(negs), negs) / negs.shape[0]
    loss.backward()
    opt.step()


batch = torch.randn(B, 3, H, W)


def extract():
    model.eval()
    with torch.inference_mode():
        model(batch)


def median_ms(fn, n):
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


train = median_ms(train_step, iters)
extract_ms = median_ms(extract, iters) / B
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "train_ms": train, "extract_ms_per_image": extract_ms}))
