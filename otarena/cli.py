"""The ``otarena`` command line: run, report, list, data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otarena.errors import OtarenaError

EPILOG = "Data directory: $OTARENA_DATA, else ~/.cache/otarena/data (see `otarena data path`)."


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    """'0,1,5' or '0-9' or a mix."""
    seeds = []
    for part in _csv(text):
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0,1,2 or 0-9") from None
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def cmd_run(args) -> int:
    from otarena import report, runner, solver
    from otarena.budgets import Budget
    from otarena.pairs import family_of
    from otarena.store import Store

    pair_names = _csv(args.pairs)
    for name in pair_names:
        family_of(name)  # unknown names fail before any work
    solvers = [solver.get(name) for name in _csv(args.solvers)]
    budget = Budget(args.budget, iterations=args.iterations, eval_every=args.eval_every)
    todo = runner.cells(pair_names, solvers, args.seeds, budget, args.eval_size,
                        reverse=args.reverse)
    store = Store(args.results)
    records = runner.run(todo, store, force=args.force, vmap_seeds=args.vmap_seeds,
                         log=(lambda _: None) if args.quiet else print)
    df = report.frame(records)
    print()
    for family in sorted(set(df.family)):
        print(f"L2-UVP fwd (%) on {family}, mean ± std over seeds:")
        print(report.table(df, family, "l2_uvp_fwd").to_string())
    print(f"\n{len(records)} records in {store.root}")
    return 0


def cmd_report(args) -> int:
    from otarena import report
    from otarena.store import Store

    records = Store(args.results).records()
    if not records:
        raise OtarenaError(f"no result records in {args.results}; run `otarena run` first")
    for path in report.write(records, args.out):
        print(path)
    return 0


def cmd_list(args) -> int:
    if args.what == "pairs":
        from otarena import data, pairs

        for fam in pairs.families().values():
            print(f"{fam.family}: {fam.description}")
            for name in fam.names:
                states = [data.status(data.entry(p))[0] for p in fam.data_files(name)]
                ready = "ready" if all(s in ("ok", "unverified") for s in states) else \
                    "data " + "/".join(sorted(set(states) - {"ok"}))
                print(f"  {name:<16} {ready}")
    else:
        from otarena import solver

        for s in solver.registry().values():
            print(f"{s.name:<24} {s.label:<8} {s.description}")
    return 0


def _data_files(what: str | None):
    """Files of data families and/or pairs named in a comma-separated list (all if None)."""
    from otarena import data, pairs

    if what is None:
        return data.files_of(None)
    files = []
    families = {f.family for f in data.manifest().values()}
    for name in _csv(what):
        if name in families:
            files += data.files_of(name)
        else:
            files += [data.entry(p) for p in pairs.family_of(name).data_files(name)]
    return list(dict.fromkeys(files))


def cmd_data(args) -> int:
    from otarena import data

    if args.action == "path":
        print(data.data_dir())
        return 0
    files = _data_files(args.what)
    if args.action == "verify":
        bad = 0
        for f in files:
            state, detail = data.status(f)
            bad += state in ("missing", "corrupt")
            print(f"{state:<10} {f.path}" + ("" if state == "ok" else f"  ({detail})"))
        print(f"{len(files) - bad} of {len(files)} files usable in {data.data_dir()}")
        return 1 if bad else 0
    for f in files:  # fetch
        print(f"{f.path}: {data.fetch(f, force=args.force)}")
    return 0


def _recipe(family: str) -> dict:
    """A recipe by family name (a ``RECIPE`` in ``datasets/``) or from a JSON file."""
    import json

    from otarena import plugins
    from otarena.errors import UnknownNameError

    if family.endswith(".json"):
        path = Path(family)
        if not path.is_file():
            raise OtarenaError(f"no recipe file {path}")
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise OtarenaError(f"{path} is not a JSON recipe ({e})") from None
    recipes = {m.RECIPE["family"]: m.RECIPE for m in plugins.load_folder("datasets")
               if isinstance(getattr(m, "RECIPE", None), dict)}
    if family not in recipes:
        raise UnknownNameError(f"no image-pair recipe {family!r}; known: {', '.join(sorted(recipes))}"
                               " (or pass a recipe.json)")
    return recipes[family]


def cmd_build_image_pair(args) -> int:
    import os

    # Same platform and versions -> the same bytes: no non-deterministic GPU kernels.
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    from otarena import image_pairs

    recipe = _recipe(args.family)
    levels = _csv(args.levels) if args.levels else None
    unknown = sorted(set(levels or []) - set(recipe["levels"]))
    if unknown:
        raise OtarenaError(f"no level {', '.join(unknown)} in {recipe['family']}; "
                           f"levels: {', '.join(recipe['levels'])}")
    overrides = {k: v for k, v in (("iterations", args.iterations),
                                   ("pretrain_steps", args.pretrain_steps),
                                   ("batch_size", args.batch_size)) if v is not None}
    path = image_pairs.build_family(recipe, levels, overrides, estimate_size=args.estimate_size,
                                    cost_size=args.cost_size, out=args.out)
    print(f"built: {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="otarena", description=__doc__, epilog=EPILOG)
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and score solvers on pairs; write result records",
                         epilog=EPILOG)
    run.add_argument("--pairs", required=True, help="comma-separated pair names, e.g. hd-2,hd-4")
    run.add_argument("--solvers", required=True, help="comma-separated solver names")
    run.add_argument("--seeds", type=_seeds, default=[0], help="e.g. 0,1,2 or 0-9 (default 0)")
    run.add_argument("--budget", default="smoke", help="smoke | quick | paper (default smoke)")
    run.add_argument("--iterations", type=_positive, help="override the budget's iterations")
    run.add_argument("--eval-every", type=_positive, help="override the budget's evaluation period")
    run.add_argument("--eval-size", type=_positive, default=4096,
                     help="evaluation points (default 4096, fixed key)")
    run.add_argument("--reverse", action="store_true", help="swap source and target of every pair")
    run.add_argument("--results", default="results", help="result store directory (default results/)")
    run.add_argument("--force", action="store_true", help="redo cells already in the store")
    run.add_argument("--vmap-seeds", action="store_true",
                     help="train the seeds of a cell in one compiled program (vmap over keys)")
    run.add_argument("--quiet", action="store_true", help="no per-cell lines")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="LaTeX tables and a markdown summary from the records")
    rep.add_argument("--results", default="results", help="result store directory (default results/)")
    rep.add_argument("--out", default="reports", help="output directory (default reports/)")
    rep.set_defaults(func=cmd_report)

    lst = sub.add_parser("list", help="what pairs or solvers exist")
    lst.add_argument("what", choices=["pairs", "solvers"])
    lst.set_defaults(func=cmd_list)

    dat = sub.add_parser("data", help="the data directory: path, verify, fetch", epilog=EPILOG)
    dat.add_argument("action", choices=["path", "verify", "fetch"])
    dat.add_argument("what", nargs="?", metavar="FAMILY|PAIRS",
                     help="a data family (hd, mnist, world) or pair names like hd-2,hd-4 "
                          "(default: every file)")
    dat.add_argument("--force", action="store_true", help="fetch: download even if present")
    dat.set_defaults(func=cmd_data)
    bip = sub.add_parser(
        "build-image-pair", epilog=EPILOG,
        help="build an image benchmark pair by the CelebA64 recipe (W2GN potentials, manifest)")
    bip.add_argument("family", help="a recipe family (e.g. mnist64-w2gn) or a recipe .json file")
    bip.add_argument("--levels", help="comma-separated levels to build (default: all)")
    bip.add_argument("--iterations", type=_positive, help="W2GN iterations per potential "
                     "(default: the recipe's, 50000 as the official pairs)")
    bip.add_argument("--pretrain-steps", type=_positive, help="identity pretraining steps (default 1000)")
    bip.add_argument("--batch-size", type=_positive, help="training batch (default 64)")
    bip.add_argument("--estimate-size", type=_positive, default=2**14,
                     help="samples for the variance constants (default 16384, as official)")
    bip.add_argument("--cost-size", type=_positive, default=64,
                     help="samples for the transport cost (default 64: one batch, as official)")
    bip.add_argument("--out", type=Path, help="output folder (default: the data directory's "
                     "otarena-built/FAMILY, where the pairs are read from)")
    bip.set_defaults(func=cmd_build_image_pair)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except OtarenaError as e:
        print(f"otarena: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("otarena: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
