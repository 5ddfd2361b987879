"""Side-by-side timing of HD target sampling: otarena (JAX) vs the official-style PyTorch push.

    python -m benchmarks.sampling_speed --dims 2,16,128 [--repeats 200] [--json out.json]

Both samplers draw a batch of 1024 target points (Mix3 source + map) per call. otarena's
sampler is compiled ahead of time, timed apart (``otarena_compile_s``); the official-style
sampler's first call is reported apart too (``official_first_call_s``). Then, interleaved
so that machine noise hits both alike: the median time of one call synchronized with the
device (``*_ms``: the latency of one batch; ``ratio`` = official / otarena, the headline),
and the time per batch of ``STREAM`` calls issued back to back with one synchronization at
the end (``*_stream_ms``: what a loop that keeps the device busy sees; ``stream_ratio``).
Both are measured in the same process on the same machine. With ``--json`` the file is
rewritten after every dimension.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import numpy as np

BATCH = 1024
STREAM = 20  # batches per streamed measurement
ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("OTARENA_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["OTARENA_DATA"] = str(ROOT.parent / "shared" / "data")


def _hd_module():
    from otarena import plugins

    return next(m for m in plugins.load_folder("datasets") if m.__name__.endswith(".hd"))


class OtarenaSide:
    def __init__(self, dim: int):
        from otarena import pairs

        pair = pairs.load(f"hd-{dim}")
        self.key = jax.random.key(0)
        start = time.perf_counter()
        self._draw = jax.jit(pair.sample_target, static_argnums=1).lower(self.key, BATCH).compile()
        self.compile_s = time.perf_counter() - start
        self.draw(BATCH)  # warm

    def draw(self, n: int, sync: bool = True):
        assert n == BATCH, "compiled for batches of BATCH"
        out = self._draw(self.key)
        return out.block_until_ready() if sync else out

    def sync(self, out):
        jax.block_until_ready(out)


class OfficialSide:
    def __init__(self, dim: int):
        import torch

        from benchmarks.torch_reference import OfficialStyleSampler
        from otarena import data
        from otarena.torch_io import load_state_dict

        hd = _hd_module()
        centers, maps = hd.mixture_parameters(dim)
        states = [load_state_dict(data.require(p), data.entry(p)) for p in hd.checkpoint_paths(dim)]
        constants = json.loads(hd.CONSTANTS_FILE.read_text())["dims"][str(dim)]
        self.cuda = torch.cuda.is_available()
        self.torch = torch
        self.sampler = OfficialStyleSampler(dim, centers, maps, states, constants["scale"],
                                            constants["offset"],
                                            device="cuda" if self.cuda else "cpu")
        np.random.seed(0)
        torch.manual_seed(0)
        start = time.perf_counter()
        self.draw(BATCH)
        self.first_call_s = time.perf_counter() - start

    def draw(self, n: int, sync: bool = True):
        out = self.sampler.sample_target(n)
        if sync:
            self.sync(out)
        return out

    def sync(self, out):
        if self.cuda:
            self.torch.cuda.synchronize()


def measure(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(BATCH)
        times.append(time.perf_counter() - start)
    return times


def measure_stream(side, batches: int = STREAM) -> float:
    """Seconds per batch of ``batches`` calls issued back to back, one sync at the end."""
    start = time.perf_counter()
    outs = [side.draw(BATCH, sync=False) for _ in range(batches)]
    side.sync(outs)
    return (time.perf_counter() - start) / batches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="2,16,128")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    import torch

    device = {"jax": str(jax.devices()[0].device_kind), "jax_platform": jax.devices()[0].platform,
              "torch": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch_threads": torch.get_num_threads()}
    versions = {"jax": jax.__version__, "torch": torch.__version__}
    print(f"devices: {device}", flush=True)
    rows = []
    rounds = max(1, min(5, args.repeats))
    for dim in (int(d) for d in args.dims.split(",")):
        ours, official = OtarenaSide(dim), OfficialSide(dim)
        # interleave the two so that machine noise hits both alike
        t_ours, t_off, s_ours, s_off = [], [], [], []
        for _ in range(rounds):
            t_ours += measure(ours.draw, max(1, args.repeats // rounds))
            t_off += measure(official.draw, max(1, args.repeats // rounds))
            s_ours.append(measure_stream(ours))
            s_off.append(measure_stream(official))
        row = {"dim": dim, "batch": BATCH, "otarena_compile_s": ours.compile_s,
               "official_first_call_s": official.first_call_s,
               "otarena_ms": 1e3 * statistics.median(t_ours),
               "official_style_ms": 1e3 * statistics.median(t_off),
               "otarena_stream_ms": 1e3 * statistics.median(s_ours),
               "official_style_stream_ms": 1e3 * statistics.median(s_off)}
        row["ratio"] = row["official_style_ms"] / row["otarena_ms"]
        row["stream_ratio"] = row["official_style_stream_ms"] / row["otarena_stream_ms"]
        rows.append(row)
        print(f"hd-{dim}: otarena {row['otarena_ms']:.3f} ms, official-style "
              f"{row['official_style_ms']:.3f} ms per batch of {BATCH} -> {row['ratio']:.1f}x "
              f"(streamed: {row['otarena_stream_ms']:.3f} vs {row['official_style_stream_ms']:.3f} "
              f"ms -> {row['stream_ratio']:.1f}x); otarena compile {row['otarena_compile_s']:.2f} s, "
              f"official first call {row['official_first_call_s']:.2f} s", flush=True)
        if args.json:
            tmp = Path(f"{args.json}.tmp")
            tmp.write_text(json.dumps({"device": device, "versions": versions, "rows": rows,
                                       "repeats": args.repeats, "stream_batches": STREAM,
                                       "goal_ratio_min": 50.0}, indent=1) + "\n")
            tmp.replace(args.json)


if __name__ == "__main__":
    main()
