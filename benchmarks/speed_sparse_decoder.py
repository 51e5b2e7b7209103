"""Speed and memory of one Sparse VAE training step: vectorised decoder vs the per-feature loop.

The paper's text setting (PeerRead): ``G = 500`` features, ``K = 20``, hidden 3 x 100, batch
100, Gaussian likelihood. One step is the trainer's step: the plain-torch loss, backward,
Adam on the networks, proximal SGD + EM on ``W``. Variants, each timed in its own
subprocess (so peak memory is its own):

- ``vectorised``: the default decoder; on a CPU it evaluates the features in blocks of about
  ``block_elements = 2**18`` activations (cache-sized), on a GPU in one pass;
- ``one_pass``: all features in one ``(B, G, H)`` pass on any device
  (``block_elements=None``; what ``vectorised`` is on a GPU);
- ``chunked``: the default in 5 feature chunks (100 features at ``G = 500``) with activation
  checkpointing (what the decoder does when ``B x G x H`` exceeds ``max_elements``);
- ``loop``: the naive loop over features (``SparseDecoder.forward_loop``, ``G`` passes).

Writes ``speed_<tag>.csv``, ``.md`` and ``.png`` to ``results/sparse_decoder_speed/`` (the
tag names the device and the sizes, e.g. ``speed_cpu_G500_K20_H100_B100``) and prints the
table. ``--device cuda`` runs the same on a GPU (peak memory from
``torch.cuda.max_memory_allocated``).

Usage::

    python benchmarks/speed_sparse_decoder.py [--steps 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _args import int_at_least  # benchmarks/, the script's folder

G, K, HIDDEN, BATCH = 500, 20, (100, 100, 100), 100
VARIANTS = ("vectorised", "one_pass", "chunked", "loop")
_CFG = {"G": G, "K": K, "hidden": HIDDEN, "batch": BATCH}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(variant: str, steps: int, device: str, threads: int) -> dict:
    if variant not in VARIANTS:  # else it would time the default decoder under this name
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.set_num_threads(threads)
    G, K, HIDDEN, BATCH = _CFG["G"], _CFG["K"], _CFG["hidden"], _CFG["batch"]
    import pyro_gfa as gfa
    from pyro_gfa.inference.train import ProximalSGD

    dev = torch.device(device)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, G)).astype(np.float32)
    est = gfa.SparseVAE(n_features=G, latent_dim=K, hidden=HIDDEN)
    if variant == "chunked":
        est.max_elements = BATCH * max(1, G // 5) * max(HIDDEN)  # five chunks at any G
    est._fit_data = X
    torch.manual_seed(0)
    module = est._build_module().to(dev)
    module.prior_weight = 1.0 / X.shape[0]
    if variant == "one_pass":
        module.decoder.block_elements = None
    if variant == "loop":
        module.decoder.forward = module.decoder.forward_loop
    x = torch.as_tensor(X[:BATCH], device=dev)
    others = [p for p in module.parameters() if p is not module.W and p.requires_grad]
    adam = torch.optim.Adam(others, lr=1e-2, foreach=True)
    prox = ProximalSGD(module, 0.3, 0.9)

    def step():
        loss = module.loss(x)
        adam.zero_grad(set_to_none=True)
        module.W.grad = None
        loss.backward()
        adam.step()
        prox.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    base_rss = _peak_rss_mib()
    for _ in range(2):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    out = {
        "variant": variant,
        "device": device,
        "step_ms": 1e3 * statistics.median(times),
        "step_ms_min": 1e3 * min(times),
        "peak_rss_mib": _peak_rss_mib(),
        "rss_growth_mib": _peak_rss_mib() - base_rss,
    }
    if dev.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int_at_least(1), default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int_at_least(1), default=1)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("results/sparse_decoder_speed"))
    p.add_argument("--G", type=int, default=G)
    p.add_argument("--K", type=int, default=K)
    p.add_argument("--hidden", type=int, nargs="+", default=list(HIDDEN))
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _CFG.update(G=args.G, K=args.K, hidden=tuple(args.hidden), batch=args.batch)
    G_, K_, H_, B_ = args.G, args.K, tuple(args.hidden), args.batch
    tag = f"{args.device}_G{G_}_K{K_}_H{'x'.join(map(str, H_))}_B{B_}"
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.device, args.threads)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for v in args.variants:
        cmd = [sys.executable, __file__, "--worker", v, "--steps", str(args.steps)]
        cmd += ["--device", args.device, "--threads", str(args.threads)]
        cmd += ["--G", str(G_), "--K", str(K_), "--batch", str(B_), "--hidden", *map(str, H_)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:  # its traceback says why (an unknown device, out of memory)
            raise SystemExit(
                f"the {v} worker failed (exit status {res.returncode}):\n{res.stderr.rstrip()}"
            )
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    loop = next((r for r in rows if r["variant"] == "loop"), None)
    for r in rows:
        r["speedup_vs_loop"] = loop["step_ms"] / r["step_ms"] if loop else float("nan")
    keys = list(rows[0].keys())
    with open(args.out / f"speed_{tag}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"G={G_}, K={K_}, hidden={H_}, batch={B_}, device={args.device},"
        f" threads={args.threads}, median of {args.steps} steps",
        "",
        "| decoder | step (ms, median) | step (ms, min) | peak RSS (MiB) | speed-up vs loop |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['step_ms']:.1f} | {r['step_ms_min']:.1f} |"
            f" {r['peak_rss_mib']:.0f} | {r['speedup_vs_loop']:.1f}x |"
        )
    table = "\n".join(lines)
    (args.out / f"speed_{tag}.md").write_text(table + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [r["variant"] for r in rows]
    ax[0].bar(names, [r["step_ms"] for r in rows], color="C0")
    ax[0].set_ylabel("ms per training step")
    ax[0].set_yscale("log")
    ax[1].bar(names, [r["peak_rss_mib"] for r in rows], color="C1")
    ax[1].set_ylabel("peak resident memory (MiB)")
    fig.suptitle(f"Sparse VAE step, G={G_}, K={K_}, hidden {H_}, batch {B_} ({args.device})")
    fig.tight_layout()
    fig.savefig(args.out / f"speed_{tag}.png", dpi=120)
    print(table)


if __name__ == "__main__":
    main()
