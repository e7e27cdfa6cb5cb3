#!/usr/bin/env python3
"""PyTorch side of `vgl bench search`: exact L2 search written the PyTorch way, in fp32 eager and under
CPU autocast to bfloat16 (the score matrix products in bf16, the ranking in fp32), on the same .npy
files as faiss. Per block of 1024 queries: scores 2q.d - |d|^2 against the whole database, top-k.
Prints one JSON line: median search time (ms) of each over N timed runs after one warm-up, and the
torch version. Saves the bf16 top-k indices (int32) so the caller can see what bf16 alone ranks.

usage: search_torch.py database.npy queries.npy k threads iters out_bf16_indices.npy"""
import json
import sys
import time

import numpy as np
import torch

db_path, q_path = sys.argv[1], sys.argv[2]
k, threads, iters = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out_bf16_indices = sys.argv[6]
torch.set_num_threads(threads)

database = torch.from_numpy(np.ascontiguousarray(np.load(db_path), dtype=np.float32))
queries = torch.from_numpy(np.ascontiguousarray(np.load(q_path), dtype=np.float32))
database_sq = database.pow(2).sum(1)


def search(bf16):
    out = []
    with torch.inference_mode():
        for q0 in range(0, queries.shape[0], 1024):
            block = queries[q0:q0 + 1024]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                s = block @ database.t()
            scores = 2 * s.float() - database_sq
            out.append(scores.topk(min(k, database.shape[0]), dim=1).indices)
    return torch.cat(out)


def median_ms(bf16):
    times = []
    for i in range(iters + 1):
        start = time.perf_counter()
        found = search(bf16)
        if i > 0:  # the first run warms caches and thread pools
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), found


fp32_ms, _ = median_ms(False)
bf16_ms, bf16_found = median_ms(True)
np.save(out_bf16_indices, bf16_found.numpy().astype(np.int32))
print(json.dumps({"fp32_ms": fp32_ms, "bf16_ms": bf16_ms, "torch": torch.__version__, "threads": threads}))
