"""Side-by-side timing of HD target sampling: otarena (JAX) vs the official-style PyTorch push.

    python -m benchmarks.sampling_speed --dims 2,16,128 [--repeats 200] [--json out.json]

Both samplers draw a batch of 1024 target points (Mix3 source + map) per call; times are
taken after warm-up (and compilation), synchronized with the device. The ratio is
official / otarena, measured in the same process on the same machine.
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
        self._draw = jax.jit(pair.sample_target, static_argnums=1)
        self.key = jax.random.key(0)
        self.draw(BATCH)  # compile

    def draw(self, n: int):
        return self._draw(self.key, n).block_until_ready()


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
        self.draw(BATCH)

    def draw(self, n: int):
        out = self.sampler.sample_target(n)
        if self.cuda:
            self.torch.cuda.synchronize()
        return out


def measure(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(BATCH)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="2,16,128")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    import torch

    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        ours, official = OtarenaSide(dim), OfficialSide(dim)
        # interleave the two so that machine noise hits both alike
        t_ours, t_off = [], []
        for _ in range(5):
            t_ours += measure(ours.draw, args.repeats // 5)
            t_off += measure(official.draw, args.repeats // 5)
        row = {"dim": dim, "batch": BATCH, "otarena_ms": 1e3 * statistics.median(t_ours),
               "official_style_ms": 1e3 * statistics.median(t_off)}
        row["ratio"] = row["official_style_ms"] / row["otarena_ms"]
        rows.append(row)
        print(f"hd-{dim}: otarena {row['otarena_ms']:.3f} ms, official-style "
              f"{row['official_style_ms']:.3f} ms per batch of {BATCH} -> {row['ratio']:.1f}x")
    device = {"jax": str(jax.devices()[0].device_kind), "jax_platform": jax.devices()[0].platform,
              "torch": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch_threads": torch.get_num_threads()}
    print(f"devices: {device}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": rows,
                                               "repeats": args.repeats}, indent=1) + "\n")


if __name__ == "__main__":
    main()
