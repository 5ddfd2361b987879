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
    """'0,1,5' or '0-9' or a mix; every seed in [0, 2**32)."""
    from otarena.runner import SEED_LIMIT

    seeds = []
    for part in _csv(text):
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise argparse.ArgumentTypeError(f"reversed seed range {part!r}: write {hi}-{lo}")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0,1,2 or 0-9") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}: use e.g. 0,1,2 or 0-9")
    if max(seeds) >= SEED_LIMIT:
        # jax.random.key keeps 32 bits: 2**32 would silently be seed 0 again
        raise argparse.ArgumentTypeError(f"seed {max(seeds)} is too large: seeds are below 2**32")
    return seeds


def _eval_size(text: str) -> int:
    from otarena import metrics

    value = _positive(text)
    problem = metrics.eval_size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _cells(args, budget, extra_solvers=()):
    """The cells a `run` asks for: a suite (narrowed by the flags) or an ad-hoc selection."""
    from otarena import metrics, pairs, runner, solver, suites

    by_name = {s.name: s for s in extra_solvers}

    def get(name):
        return by_name[name] if name in by_name else solver.get(name)

    if args.suite is None:
        if not args.pairs or not args.solvers:
            raise OtarenaError("give --suite, or both --pairs and --solvers")
        pair_names = _csv(args.pairs)
        for name in pair_names:
            pairs.family_of(name)  # unknown names fail before any work
        return runner.cells(pair_names, [get(n) for n in _csv(args.solvers)],
                            args.seeds or [0], budget, args.eval_size or metrics.DEFAULT_EVAL_SIZE,
                            reverse=args.reverse)
    suite = suites.get(args.suite)
    chosen_pairs = _csv(args.pairs) if args.pairs else list(suite.pairs)
    chosen_solvers = _csv(args.solvers) if args.solvers else None
    for name in chosen_pairs:
        if name not in suite.pairs:
            raise OtarenaError(f"pair {name!r} is not in suite {suite.name}")
    rows = list(suite.solvers) + [f"{n}:R" for n in suite.reversed_solvers]
    for name in chosen_solvers or []:
        if name not in rows and name not in suite.reversed_solvers:
            raise OtarenaError(f"solver {name!r} is not in suite {suite.name}; its rows: "
                               f"{', '.join(rows)}")
    ready = []
    for name in chosen_pairs:
        why = pairs.problem(name)
        if why:
            print(f"skipped {why}", file=sys.stderr)
        else:
            ready.append(name)
    seeds = args.seeds or list(suite.seeds[budget.profile])
    todo = []
    for names, reverse in ((suite.solvers, False), (suite.reversed_solvers, True)):
        picked = [n for n in names if chosen_solvers is None or n in chosen_solvers or
                  (reverse and f"{n}:R" in chosen_solvers)]
        todo += runner.cells(ready, [get(n) for n in picked], seeds, budget,
                             args.eval_size or suite.eval_size,
                             reverse=reverse)
    return todo


def _run_metaot(args, budget) -> int:
    from otarena import cli_metaot
    from otarena.store import Store

    from otarena import suites

    suite = suites.get(args.suite)
    families = _csv(args.pairs) if args.pairs else list(suite.pairs)
    initializers = _csv(args.solvers) if args.solvers else list(suite.solvers)
    for name in families:
        if name not in suite.pairs:
            raise OtarenaError(f"{name!r} is not a family of {suite.name}: {', '.join(suite.pairs)}")
    store = Store(args.results, filename=cli_metaot.RECORDS_FILE)
    records = cli_metaot.run_suite(budget, args.seeds or list(suite.seeds[budget.profile]), store,
                                   families=families, initializers=initializers, force=args.force,
                                   log=(lambda _: None) if args.quiet else print)
    print(f"{len(records)} records in {store.path}; `otarena report` writes Table 1")
    return 0


def cmd_run(args) -> int:
    from otarena import executors, report, runner, suites
    from otarena.budgets import Budget
    from otarena.store import Store

    budget = Budget(args.budget, iterations=args.iterations, eval_every=args.eval_every)
    if args.suite and suites.get(args.suite).delegate == "metaot":
        return _run_metaot(args, budget)
    todo = _cells(args, budget)
    store = Store(args.results)
    if args.executor != "local":
        options = executors.SlurmOptions(partition=args.partition,
                                         time_limit_minutes=args.time_limit,
                                         gpus_per_job=args.gpus_per_job,
                                         array_parallelism=args.array_parallelism)
        cluster = "slurm" if args.executor == "slurm" else "local"
        jobs = executors.submit(todo, store, Path(args.jobs_dir or store.root / ".submitit"),
                                options, cluster=cluster, force=args.force,
                                vmap_seeds=args.vmap_seeds)
        print(f"submitted {len(jobs)} array tasks for {len(todo)} cells "
              f"({', '.join(j.job_id for j in jobs[:3])}{', ...' if len(jobs) > 3 else ''})")
        if args.wait:
            for job in jobs:
                job.result()
        else:
            return 0
    records = runner.run(todo, store, force=args.force, vmap_seeds=args.vmap_seeds,
                         quiet=args.quiet) if args.executor == "local" else \
        [r for r in store.records() if r["run_id"] in {c.run_id for c in todo}]
    df = report.frame(records)
    print()
    for family in sorted(set(df.family)):
        print(f"L2-UVP fwd (%) on {family}, mean ± std over seeds:")
        print(report.table(df, family, "l2_uvp_fwd").to_string())
    print(f"\n{len(records)} records in {store.root}")
    return _failures(records)


def _failures(records: list[dict]) -> int:
    """Exit code 1, and one line, when a solver failed in some cells (the matrix went on)."""
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        print(f"otarena: {len(failed)} of {len(records)} cells failed; each record holds its "
              "error and traceback, and the next run tries them again", file=sys.stderr)
    return 1 if failed else 0


def cmd_compare(args) -> int:
    from otarena import compare, runner, solver
    from otarena.budgets import Budget
    from otarena.store import Store, writable_folder

    mine = solver.load_file(args.solver_file)
    budget = Budget(args.budget, iterations=args.iterations, eval_every=args.eval_every)
    pair_names = _csv(args.pairs)
    against = [solver.get(n) for n in _csv(args.against)]
    clash = {s.name for s in mine} & {s.name for s in against}
    if clash:
        raise OtarenaError(f"{args.solver_file} defines {', '.join(sorted(clash))}, which "
                           "--against also names; rename the solver")
    todo = runner.cells(pair_names, mine + against, args.seeds or [0], budget, args.eval_size)
    store = Store(args.results)
    out = Path(args.out or Path("reports") / "compare" / Path(args.solver_file).stem)
    writable_folder(out, "the comparison folder")  # before the training, not after
    records = runner.run(todo, store, quiet=args.quiet, vmap_seeds=args.vmap_seeds)
    for path in compare.write(records, [s.name for s in mine], [s.name for s in against],
                              pair_names, out):
        print(path)
    return _failures(records)


def cmd_report(args) -> int:
    from otarena import report
    from otarena.store import Store

    from otarena.store import writable_folder

    records = Store(args.results).records()
    if not records:
        raise OtarenaError(f"no result records in {args.results}; run `otarena run` first")
    writable_folder(args.out, "the report folder")
    for path in report.write_all(records, args.out):
        print(path)
    return 0


def cmd_verify(args) -> int:
    from otarena import verify
    from otarena.store import Store

    ours, reference = Store(args.results).records(), Store(args.against).records()
    if not ours:
        raise OtarenaError(f"no result records in {args.results}; run `otarena run` first")
    if not reference:
        raise OtarenaError(f"no result records in {args.against} to verify against")
    checks = verify.compare(ours, reference)
    print(verify.render(checks, args.against))
    return 1 if any(c.verdict == "differ" for c in checks) else 0


def cmd_list(args) -> int:
    if args.what == "suites":
        from otarena import suites

        for suite in suites.SUITES.values():
            sizes = ", ".join(f"{p} {suite.size(p)}" for p in ("smoke", "quick", "paper"))
            print(f"{suite.name:<16} {suite.reproduces}\n{'':<16} cells: {sizes}")
        return 0
    if args.what == "pairs":
        from otarena import pairs

        for fam in pairs.families().values():
            print(f"{fam.family}: {fam.description}")
            for name in fam.names:
                why = pairs.problem(name)
                print(f"  {name:<18} {'ready' if why is None else 'not ready: ' + why.split(': ', 1)[1]}")
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
            bad += state in data.UNUSABLE
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
    run.add_argument("--suite", help="a named matrix (`otarena list suites`); the flags below narrow it")
    run.add_argument("--pairs", help="comma-separated pair names, e.g. hd-2,hd-4")
    run.add_argument("--solvers", help="comma-separated solver names")
    run.add_argument("--seeds", type=_seeds, help="e.g. 0,1,2 or 0-9 (default: the suite's "
                     "seeds for the budget, else 0)")
    run.add_argument("--budget", default="smoke", help="smoke | quick | paper (default smoke)")
    run.add_argument("--iterations", type=_positive, help="override the budget's iterations")
    run.add_argument("--eval-every", type=_positive, help="override the budget's evaluation period")
    run.add_argument("--eval-size", type=_eval_size, default=None,
                     help="evaluation points (default: the suite's, 2^14 for the Amos HD "
                          "suites as w2ot, else 4096; fixed key)")
    run.add_argument("--reverse", action="store_true", help="swap source and target of every pair")
    run.add_argument("--results", default="results", help="result store directory (default results/)")
    run.add_argument("--force", action="store_true", help="redo cells already in the store")
    run.add_argument("--vmap-seeds", action="store_true",
                     help="train the seeds of a cell in one compiled program (vmap over keys)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-cell lines")
    run.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                     help="local: this process (default); slurm: a submitit job array; "
                          "submitit-local: the SLURM path with jobs as local processes")
    run.add_argument("--partition", help="slurm: partition")
    run.add_argument("--time-limit", type=_positive, default=4320, help="slurm: minutes per job")
    run.add_argument("--gpus-per-job", type=int, default=1, help="slurm: GPUs per job")
    run.add_argument("--array-parallelism", type=_positive, default=64,
                     help="slurm: array tasks running at once")
    run.add_argument("--jobs-dir", help="submitit's folder (default {results}/.submitit)")
    run.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then print the table")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="LaTeX tables and a markdown summary from the records")
    rep.add_argument("--results", default="results", help="result store directory (default results/)")
    rep.add_argument("--out", default="reports", help="output directory (default reports/)")
    rep.set_defaults(func=cmd_report)

    cmp = sub.add_parser("compare", help="run a solver file against baselines; write a "
                         "comparison table and figure", epilog=EPILOG)
    cmp.add_argument("solver_file", help="a Python file defining SOLVERS (see README)")
    cmp.add_argument("--pairs", required=True, help="comma-separated pair names")
    cmp.add_argument("--against", required=True, help="comma-separated baseline solver names")
    cmp.add_argument("--seeds", type=_seeds, help="e.g. 0,1,2 or 0-9 (default 0)")
    cmp.add_argument("--budget", default="smoke", help="smoke | quick | paper (default smoke)")
    cmp.add_argument("--iterations", type=_positive, help="override the budget's iterations")
    cmp.add_argument("--eval-every", type=_positive, help="override the budget's evaluation period")
    cmp.add_argument("--eval-size", type=_eval_size, default=4096, help="evaluation points (default 4096)")
    cmp.add_argument("--results", default="results", help="result store (default results/)")
    cmp.add_argument("--out", help="output folder (default reports/compare/<file stem>)")
    cmp.add_argument("--vmap-seeds", action="store_true", help="train seeds in one program")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars or per-cell lines")
    cmp.set_defaults(func=cmd_compare)

    ver = sub.add_parser("verify", help="compare a store's records with a reference store's "
                         "(same run id, same device kind) and say whether they reproduce it")
    ver.add_argument("--results", default="results", help="the store to check (default results/)")
    ver.add_argument("--against", required=True, help="the reference store, e.g. results/")
    ver.set_defaults(func=cmd_verify)

    lst = sub.add_parser("list", help="what pairs, solvers or suites exist")
    lst.add_argument("what", choices=["pairs", "solvers", "suites"])
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

    from otarena import cli_metaot
    cli_metaot.add_arguments(sub, EPILOG)
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
