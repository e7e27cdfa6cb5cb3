#!/usr/bin/env python3
"""faiss side of `vgl bench search`: exact L2 search with IndexFlatL2 (as the geo-localization benchmark
evaluates), database and queries read from .npy files. Prints one JSON line: median search time (ms) over
N timed runs after one warm-up, and the faiss version. Saves the top-k indices (int32) and true L2
distances (float32, faiss returns squared ones) so the caller can compare results.

usage: search.py database.npy queries.npy k threads iters out_indices.npy out_distances.npy"""
import json
import sys
import time

import numpy as np
import faiss

db_path, q_path = sys.argv[1], sys.argv[2]
k, threads, iters = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out_indices, out_distances = sys.argv[6], sys.argv[7]
faiss.omp_set_num_threads(threads)

database = np.ascontiguousarray(np.load(db_path), dtype=np.float32)
queries = np.ascontiguousarray(np.load(q_path), dtype=np.float32)
index = faiss.IndexFlatL2(database.shape[1])
index.add(database)

times = []
for i in range(iters + 1):
    start = time.perf_counter()
    distances, indices = index.search(queries, k)
    elapsed = (time.perf_counter() - start) * 1000
    if i > 0:  # the first run warms caches and thread pools
        times.append(elapsed)

np.save(out_indices, indices.astype(np.int32))
np.save(out_distances, np.sqrt(np.maximum(distances, 0)).astype(np.float32))
print(json.dumps({"search_ms": float(np.median(times)), "faiss": faiss.__version__, "threads": threads}))
