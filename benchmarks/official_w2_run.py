"""Run the OFFICIAL Korotin et al. 2021 [W2] (W2GN) HD test notebook on a CPU-only PyTorch.

    python benchmarks/official_w2_run.py --official W2B --out DIR [--dim 4] [--max-iter 250001]

A reference run of the official code, to hold otarena's paper-budget [W2] cells against
(results/official/README.md says what it found). It runs in a scratch environment, not the
project's: PyTorch (CPU), numpy, scipy, pandas, scikit-learn; nothing of otarena.

W2B is an extracted tree of iamalexkorotin/Wasserstein2Benchmark (commit 647a1ac) with
benchmarks/Mix3toMix10/{D}_v1.pt, {D}_v2.pt present (e.g. a link to
$OTARENA_DATA/w2-benchmark/Mix3toMix10). No official code is in this file: the src modules
are imported from W2B and the code cells 3, 5, 7, 9, 11, 12, 13 and 14 of
notebooks/W2_test_hd_benchmark.ipynb are read from the notebook JSON and exec'd verbatim, in
that order, in one namespace, with cwd = W2B/notebooks (the benchmark class loads
'../benchmarks/Mix3toMix10/...'). Their sha256 are recorded in metrics.json.

Parameters (assignments in the namespace between cells; no source text is changed):
  - DIM := --dim after cell 3 (cell 3 sets DIM = 16), so cell 5's LAMBDA = DIM and
    D_HYPERPARAMS use it. BATCH_SIZE (1024), REVERSED (False) stay cell 3's.
  - MAX_ITER := --max-iter and OUTPUT_PATH := --out after cell 5 (cell 5 sets 250001 and
    '../logs/Mix3toMix10'; it still creates that folder, W2B/logs/Mix3toMix10, left empty).
    The best-checkpoint torch.save of cell 13 and the CSV of cell 14 thus go to --out.

Stand-ins (everything else is the official code, unmodified):
  1. torch.cuda.is_available -> True, only while cell 5 runs (its `assert`).
  2. torch.cuda.set_device -> no-op (fails on a CPU-only build).
  3. device 'cuda' -> 'cpu' in the `device=` keyword of torch factory functions
     (torch.tensor, randn, rand, randint, zeros, ones, empty, full, arange, as_tensor, eye):
     covers the official classes' default device='cuda' (src/distributions.py samplers,
     src/map_benchmark.py benchmarks) and the hard-coded device='cuda' of
     src/potentials.py:82 (ShiftedPotential). The classes' `.device` attributes stay the
     string 'cuda' (their `assert ... device == device` checks compare those strings).
  4. nn.Module.to / torch.Tensor.to: a 'cuda' device argument -> 'cpu'
     (src/map_benchmark.py `.to(device)`, src/distributions.py `potential.to(self.device)`).
  5. nn.Module.cuda / torch.Tensor.cuda -> return self (cell 9's `.cuda()`).
  (torch.cuda.empty_cache is left real: it is already a no-op without CUDA.)
  6. src.inception (FID InceptionV3, imported by src/tools.py, needs torchvision, used by
     nothing here) -> placeholder module, when torchvision is missing.
  7. Cell 1 is not run; its names are provided: os, sys, matplotlib, np, plt, torch, gc, PCA,
     distributions, map_benchmark, mbm, DenseICNN, train_identity_map, unfreeze,
     score_fitted_maps, score_baseline_maps, metrics_to_dict, pd (all real, official src),
     and stand-ins: plot_benchmark_emb, plot_W2, plot_benchmark_metrics -> no-ops returning
     (None, None) (the real plot_benchmark_emb draws 1024 samples per sampler every 1000
     iterations, so the RNG stream differs from a notebook run from there on; it also freezes
     D, D_conj, which cell 13 unfreezes at every iteration's start); plt.show/plt.close ->
     no-ops; clear_output -> no-op; tqdm -> pass-through iterator that, after every
     iteration divisible by 1000 and at the end, appends a progress line to DIR/progress.log
     and writes DIR/metrics.json (tmp file + rename).
  score_fitted_maps (the evaluation, every 100 iterations) is the real one. The random stream
  is torch's CPU one, so numbers differ from a CUDA run by Monte Carlo noise only.

torch.set_num_threads(1) and set_num_interop_threads(1). Run under `nice -n 10`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import signal
import sys
import time
import types
from unittest import mock
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

CELLS = (3, 5, 7, 9, 11, 12, 13, 14)
NOTEBOOK = "notebooks/W2_test_hd_benchmark.ipynb"
FACTORIES = ("tensor", "randn", "rand", "randint", "zeros", "ones", "empty", "full",
             "arange", "as_tensor", "eye")


def _is_cuda(dev) -> bool:
    return ((isinstance(dev, str) and dev.startswith("cuda"))
            or (isinstance(dev, torch.device) and dev.type == "cuda"))


def _cpu(dev):
    return "cpu" if _is_cuda(dev) else dev


def _factory(orig):
    def wrapper(*args, **kwargs):
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        return orig(*args, **kwargs)
    wrapper.__wrapped__ = orig
    return wrapper


def _to(orig):
    def to(self, *args, **kwargs):
        args = tuple(_cpu(a) for a in args)
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        return orig(self, *args, **kwargs)
    return to


@contextlib.contextmanager
def cuda_on_cpu():
    """Stand-ins 2-5 (see the docstring)."""
    with contextlib.ExitStack() as stack:
        for name in FACTORIES:
            stack.enter_context(mock.patch.object(torch, name, _factory(getattr(torch, name))))
        stack.enter_context(mock.patch.object(torch.nn.Module, "to", _to(torch.nn.Module.to)))
        stack.enter_context(mock.patch.object(torch.Tensor, "to", _to(torch.Tensor.to)))
        stack.enter_context(mock.patch.object(torch.nn.Module, "cuda", lambda self, *a, **k: self))
        stack.enter_context(mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self))
        stack.enter_context(mock.patch.object(torch.cuda, "set_device", lambda *a, **k: None))
        yield


def import_official(tree: Path) -> dict:
    """Cell 1's names (stand-in 7)."""
    sys.path.insert(0, str(tree))
    try:
        import torchvision  # noqa: F401
    except Exception:  # stand-in 6
        placeholder = types.ModuleType("src.inception")
        placeholder.InceptionV3 = None
        sys.modules["src.inception"] = placeholder
    import gc
    import numpy as np
    import pandas as pd
    from sklearn.decomposition import PCA
    from src import distributions, map_benchmark
    from src.icnn import DenseICNN
    from src.tools import train_identity_map, unfreeze
    import src.map_benchmark as mbm
    from src.metrics import score_fitted_maps, score_baseline_maps, metrics_to_dict

    def no_plot(*args, **kwargs):
        return None, None

    return {"os": os, "sys": sys, "matplotlib": None, "np": np, "torch": torch, "gc": gc,
            "PCA": PCA, "distributions": distributions, "map_benchmark": map_benchmark,
            "mbm": mbm, "DenseICNN": DenseICNN, "train_identity_map": train_identity_map,
            "unfreeze": unfreeze, "score_fitted_maps": score_fitted_maps,
            "score_baseline_maps": score_baseline_maps, "metrics_to_dict": metrics_to_dict,
            "pd": pd,
            "plt": types.SimpleNamespace(show=lambda *a, **k: None, close=lambda *a, **k: None),
            "plot_benchmark_emb": no_plot, "plot_W2": no_plot, "plot_benchmark_metrics": no_plot,
            "clear_output": lambda *a, **k: None}


def _num(x):
    """JSON-safe float (inf/nan -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--max-iter", type=int, default=250001)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--official", type=Path, required=True,
                        help="extracted tree of the official repository (see the docstring)")
    args = parser.parse_args()
    out, tree = args.out.resolve(), args.official.resolve()
    out.mkdir(parents=True, exist_ok=True)
    nb = json.loads((tree / NOTEBOOK).read_text())
    cells = {i: "".join(nb["cells"][i]["source"]) for i in CELLS}
    assert all(nb["cells"][i]["cell_type"] == "code" for i in CELLS)

    ns = import_official(tree)
    os.chdir(tree / "notebooks")
    log_path, metrics_path = out / "progress.log", out / "metrics.json"
    state = {"t0": None, "last": None, "iteration": None, "status": "setup",
             "constants": None, "rates": []}

    def log(line):
        with open(log_path, "a") as f:
            f.write(line + "\n")

    def write_metrics():
        m = ns.get("metrics") or {}
        hist = ns.get("W2_history") or []
        doc = {
            "status": state["status"], "iteration": state["iteration"],
            "wall_s": None if state["t0"] is None else time.time() - state["t0"],
            "metrics": {k: [_num(v) for v in vs] for k, vs in m.items()},
            "metrics_every": 100,
            "L2_UVP_fwd_min": _num(ns.get("L2_UVP_fwd_min")),
            "L2_UVP_inv_min": _num(ns.get("L2_UVP_inv_min")),
            "W2_history_every100": [_num(v) for v in hist[::100]],
            "constants": state["constants"],
            "baselines": {b: {k: _num(v) for k, v in d.items()}
                          for b, d in (ns.get("baselines") or {}).items()},
            "progress": state["rates"],
            "config": {k: ns.get(k) for k in ("DIM", "BATCH_SIZE", "REVERSED", "LR", "LAMBDA",
                                               "MAX_ITER", "METHOD", "BENCHMARK",
                                               "D_HYPERPARAMS")} | {"OUTPUT_PATH": str(out)},
            "provenance": {
                "notebook": NOTEBOOK, "tree": str(tree),
                "cells": {str(i): hashlib.sha256(s.encode()).hexdigest()
                          for i, s in cells.items()},
                "torch": torch.__version__, "python": platform.python_version(),
                "threads": torch.get_num_threads(), "device": "cpu"},
        }
        tmp = metrics_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, metrics_path)

    def progress(iterable):  # tqdm stand-in
        state["t0"] = state["last"] = time.time()
        log(f"start {time.strftime('%Y-%m-%d %H:%M:%S')} MAX_ITER={ns['MAX_ITER']}")
        for it in iterable:
            yield it
            state["iteration"] = it
            if it % 1000 == 0:
                now = time.time()
                n = 1000 if it else 1
                rate = n / max(now - state["last"], 1e-9)
                state["rates"].append({"iteration": it, "wall_s": round(now - state["t0"], 3),
                                       "it_per_s": round(rate, 3)})
                log(f"iteration {it} wall_s {now - state['t0']:.1f} it/s {rate:.2f} "
                    f"L2_UVP_fwd {ns['metrics']['L2_UVP_fwd'][-1]:.4f}")
                state["last"] = now
                write_metrics()

    ns["tqdm"] = progress

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    def run(i):
        exec(compile(cells[i], f"{NOTEBOOK}[cell {i}]", "exec"), ns)

    try:
        with cuda_on_cpu():
            run(3)
            ns["DIM"] = args.dim
            with mock.patch.object(torch.cuda, "is_available", lambda: True):  # stand-in 1
                run(5)
            ns["MAX_ITER"], ns["OUTPUT_PATH"] = args.max_iter, str(out)
            run(7)
            bm = ns["benchmark"]
            pot = bm.potential  # ScaledPotential(ShiftedPotential(psi1 + psi2, -mean), scale)
            state["constants"] = {
                "out_var": _num(bm.output_sampler.var), "in_var": _num(bm.input_sampler.var),
                "cost": _num(bm.cost), "scale": _num(pot.scale),
                "offset": [float(v) for v in pot.potential.shift.tolist()],
                "linear_cost": _num(bm.linear_cost)}
            run(9)
            run(11)
            run(12)
            write_metrics()
            state["status"] = "training"
            run(13)
            state["status"] = "done"
            run(14)
    except BaseException as exc:
        state["status"] = f"stopped: {type(exc).__name__}: {exc}"
        raise
    finally:
        if state["t0"] is not None:
            log(f"end {state['status']} iteration {state['iteration']} "
                f"wall_s {time.time() - state['t0']:.1f}")
        write_metrics()


if __name__ == "__main__":
    main()
