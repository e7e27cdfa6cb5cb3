#!/usr/bin/env python3
"""PyTorch side of `vgl bench model`: the seed workload, ResNet-18 conv4 + NetVLAD (64 clusters).

- train_ms: one training step on one triplet tuple (12 images 480x640: query, positive, 10 negatives),
  triplet margin 0.1 (plain L2, as torch.nn.TripletMarginLoss), Adam lr 1e-5, conv1..layer2 frozen.
- extract_ms_per_image: eager descriptor extraction in eval mode under inference_mode (batch of B).
- extract_optimised_ms_per_image: the same with vgl's inference optimisations done the PyTorch way:
  BatchNorm folded into the convolutions (torch.nn.utils.fusion.fuse_conv_bn_eval) and channels-last
  weights and inputs.
- train_channels_last_ms, train_bf16_channels_last_ms: the training step with the model and its
  inputs in channels-last order (model.to(memory_format=torch.channels_last)), as PyTorch recommends
  for CNNs on CPUs.
- *_bf16_*: the same under CPU autocast to bfloat16 (torch.autocast("cpu", torch.bfloat16)), as
  the PyTorch documentation writes mixed precision: forward and loss inside autocast, backward and the
  optimizer step outside; fp32 master weights.
Random weights: timing does not depend on them. Prints JSON (medians).
On DEVICE cuda (default cpu) the same on the GPU, autocast on "cuda", each timing synchronised.
Usage: model.py THREADS ITERS HEIGHT WIDTH EXTRACT_BATCH [DEVICE]
"""
import json
import sys
import time

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from torch_heads import NetVLAD
from torch_resnet import layer

threads, iters, H, W, B = (int(a) for a in sys.argv[1:6])
device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
kind = "cuda" if device.startswith("cuda") else "cpu"
torch.set_num_threads(threads)
torch.manual_seed(0)


backbone = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         layer(64, 64, 1), layer(64, 128, 2), layer(128, 256, 2))
for m in list(backbone.children())[:6]:
    for p in m.parameters():
        p.requires_grad = False
model = nn.Sequential(backbone, NetVLAD(64, 256)).to(device)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
criterion = nn.TripletMarginLoss(margin=0.1, p=2, reduction="sum")
images = torch.randn(12, 3, H, W).to(device)


def train_step(bf16=False, net=None, x=None):
    net, x = net or model, images if x is None else x
    net.train()
    for m in list(net[0].children())[:6]:
        m.eval()
    opt.zero_grad()
    with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
        d = net(x)
        q, p, negs = d[0:1], d[1:2], d[2:]
        loss = criterion(q.expand_as(negs), p.expand_as(negs), negs) / negs.shape[0]
    loss.backward()
    opt.step()


batch = torch.randn(B, 3, H, W).to(device)

# Training the PyTorch way for CNNs on CPUs: the model and its inputs in channels-last order.
model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
opt_cl = torch.optim.Adam([p for p in model_cl.parameters() if p.requires_grad], lr=1e-5)
images_cl = images.contiguous(memory_format=torch.channels_last)


def train_step_cl(bf16=False):
    global opt
    saved, opt = opt, opt_cl
    try:
        train_step(bf16, model_cl, images_cl)
    finally:
        opt = saved


def extract(bf16=False):
    model.eval()
    with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
        model(batch)


def folded(module):
    """A copy of `module` in eval mode with every Conv2d followed by a BatchNorm2d fused into one conv."""
    module = copy.deepcopy(module).eval()
    for parent in module.modules():
        names = list(parent._modules.keys())
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
    return module


fast = folded(model).to(memory_format=torch.channels_last)
batch_cl = batch.contiguous(memory_format=torch.channels_last)
with torch.inference_mode():  # the folded copy computes the same descriptors as the network it copies
    assert torch.allclose(fast(batch_cl), model.eval()(batch), atol=1e-4), "folding changed the descriptors"


def extract_optimised(bf16=False):
    with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
        fast(batch_cl)


def median_ms(fn, n):
    sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


bf16 = lambda fn: lambda: fn(bf16=True)  # noqa: E731
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
                  **({"gpu": torch.cuda.get_device_name(0)} if kind == "cuda" else {}),
                  "train_ms": median_ms(train_step, iters),
                  "extract_ms_per_image": median_ms(extract, iters) / B,
                  "extract_optimised_ms_per_image": median_ms(extract_optimised, iters) / B,
                  "train_bf16_ms": median_ms(bf16(train_step), iters),
                  "train_channels_last_ms": median_ms(train_step_cl, iters),
                  "train_bf16_channels_last_ms": median_ms(bf16(train_step_cl), iters),
                  "extract_bf16_ms_per_image": median_ms(bf16(extract), iters) / B,
                  "extract_bf16_optimised_ms_per_image": median_ms(bf16(extract_optimised), iters) / B}))
