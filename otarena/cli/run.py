"""``otarena run``, ``report``, ``compare`` and ``verify``: cells from flags, the runner or
the executors, and the reports."""

from __future__ import annotations

import sys
from pathlib import Path

from otarena.cli.args import MAP_ONLY, SINKHORN_ONLY, csv
from otarena.errors import OtarenaError

NOUNS = {"maps": ("pair", "pairs", "solver"), "sinkhorn": ("family", "families", "initializer")}


def _known(kind: str, what: str, name: str) -> bool:
    """Whether ``name`` is a pair (family) or solver (initializer) of the task ``kind``."""
    if kind == "sinkhorn":
        from otarena.sinkhorn import config, family

        return name in (family.registered() if what == "pair" else config.INITIALIZERS)
    from otarena import pairs, solver

    return name in (pairs.names() if what == "pair" else solver.registry())


def _kind(args) -> str:
    """The task of the cells asked for: the suite's, else Sinkhorn when every pair named is
    a problem family."""
    from otarena import suites
    from otarena.sinkhorn import family

    if args.suite:
        return suites.get(args.suite).task
    names = csv(args.pairs or "")
    return "sinkhorn" if names and all(n in family.registered() for n in names) else "maps"


def _check_flags(args, kind: str) -> None:
    """A flag of the other task's cells is a mistake, not something to ignore."""
    other, noun = (SINKHORN_ONLY, "Sinkhorn") if kind == "maps" else (MAP_ONLY, "map")
    for dest in other:
        if getattr(args, dest, None) not in (None, False):
            raise OtarenaError(f"--{dest.replace('_', '-')} applies to {noun} cells only; "
                               f"these are {'map' if kind == 'maps' else 'Sinkhorn'} cells")


def _names(args, suite, kind: str) -> tuple[list[str], list[str] | None]:
    """The pairs and solvers asked for, each checked against the suite's."""
    pair_noun, pair_nouns, solver_noun = NOUNS[kind]
    chosen_pairs = csv(args.pairs) if args.pairs else list(suite.pairs)
    chosen_solvers = csv(args.solvers) if args.solvers else None
    for name in chosen_pairs:
        if name not in suite.pairs:
            known = "" if _known(kind, "pair", name) else "unknown "
            raise OtarenaError(f"{known}{pair_noun} {name!r} is not in suite {suite.name}; its "
                               f"{pair_nouns}: {', '.join(suite.pairs)}")
    rows = list(suite.solvers) + [f"{n}:R" for n in suite.reversed_solvers]
    for name in chosen_solvers or []:
        if name not in rows and name not in suite.reversed_solvers:
            known = "" if _known(kind, "solver", name) else "unknown "
            raise OtarenaError(f"{known}{solver_noun} {name!r} is not in suite {suite.name}; "
                               f"its rows: {', '.join(rows)}")
    return chosen_pairs, chosen_solvers


def _sinkhorn_cells(args, budget, suite):
    from otarena.sinkhorn import task

    if suite is None:
        families, initializers = csv(args.pairs or ""), csv(args.solvers or "")
        if not families or not initializers:
            raise OtarenaError("give --suite, or both --pairs and --solvers")
    else:
        families, initializers = _names(args, suite, "sinkhorn")
        initializers = initializers or list(suite.solvers)
    options: dict[str, dict] = {}
    for family, key, value in args.pair_option or []:
        if family not in families:
            raise OtarenaError(f"--pair-option {family}.{key}: {family} is not among the "
                               f"families run ({', '.join(families)})")
        options.setdefault(family, {})[key] = value
    seeds = args.seeds or (list(suite.seeds[budget.profile]) if suite else [0])
    overrides = {"test_instances": args.test_instances, "repeats": args.repeats,
                 "thresholds": args.thresholds, "dtype": args.dtype,
                 "curve_iterations": args.curve_iterations}
    return task.cells(families, initializers, seeds, budget, options, overrides,
                      artifacts=args.artifacts, retrain=args.retrain)


def _map_cells(args, budget, suite, extra_solvers=()):
    from otarena import map_task, metrics, pairs, solver

    by_name = {s.name: s for s in extra_solvers}

    def get(name):
        return by_name[name] if name in by_name else solver.get(name)

    if suite is None:
        if not args.pairs or not args.solvers:
            raise OtarenaError("give --suite, or both --pairs and --solvers")
        pair_names = csv(args.pairs)
        for name in pair_names:
            pairs.family_of(name)  # unknown names fail before any work
        return map_task.cells(pair_names, [get(n) for n in csv(args.solvers)],
                              args.seeds or [0], budget, args.eval_size or metrics.DEFAULT_EVAL_SIZE,
                              reverse=args.reverse)
    chosen_pairs, chosen_solvers = _names(args, suite, "maps")
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
        todo += map_task.cells(ready, [get(n) for n in picked], seeds, budget,
                               args.eval_size or suite.eval_size, reverse=reverse)
    return todo


def cells(args, budget):
    """The cells a `run` asks for: a suite (narrowed by the flags) or an ad-hoc selection."""
    from otarena import suites

    kind = _kind(args)
    _check_flags(args, kind)
    suite = suites.get(args.suite) if args.suite else None
    if kind == "sinkhorn":
        return _sinkhorn_cells(args, budget, suite)
    return _map_cells(args, budget, suite)


def cmd_run(args) -> int:
    from otarena import reporting, runner
    from otarena.budgets import Budget
    from otarena.store import Store

    budget = Budget(args.budget, iterations=args.iterations, eval_every=args.eval_every)
    todo = cells(args, budget)
    store = Store(args.results)
    if args.executor != "local":
        from otarena import executors  # submitit: imported only for the job path

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
        if not args.wait:
            return 0
        for job in jobs:
            job.result()
        wanted = {c.run_id for c in todo}
        records = [r for r in store.records() if r["run_id"] in wanted]
    else:
        records = runner.run(todo, store, force=args.force, vmap_seeds=args.vmap_seeds,
                             quiet=args.quiet)
    print()
    print(reporting.console(records))
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
    from otarena import map_task, runner, solver
    from otarena.budgets import Budget
    from otarena.reporting import compare
    from otarena.store import Store, writable_folder

    mine = solver.load_file(args.solver_file)
    budget = Budget(args.budget, iterations=args.iterations, eval_every=args.eval_every)
    pair_names = csv(args.pairs)
    against = [solver.get(n) for n in csv(args.against)]
    clash = {s.name for s in mine} & {s.name for s in against}
    if clash:
        raise OtarenaError(f"{args.solver_file} defines {', '.join(sorted(clash))}, which "
                           "--against also names; rename the solver")
    todo = map_task.cells(pair_names, mine + against, args.seeds or [0], budget, args.eval_size)
    store = Store(args.results)
    out = Path(args.out or Path("reports") / "compare" / Path(args.solver_file).stem)
    writable_folder(out, "the comparison folder")  # before the training, not after
    records = runner.run(todo, store, quiet=args.quiet, vmap_seeds=args.vmap_seeds)
    for path in compare.write(records, [s.name for s in mine], [s.name for s in against],
                              pair_names, out):
        print(path)
    return _failures(records)


def cmd_report(args) -> int:
    from otarena import reporting
    from otarena.store import Store, writable_folder

    records = Store(args.results).records()
    if not records and args.suite is None:
        raise OtarenaError(f"no result records in {args.results}; run `otarena run` first")
    if args.suite is not None and not records:
        raise OtarenaError(f"no {args.suite} records in {args.results}; run `otarena run "
                           f"--suite {args.suite}` first")
    writable_folder(args.out, "the report folder")
    try:
        paths = reporting.write_all(records, args.out, suite=args.suite)
    except OtarenaError as e:
        raise OtarenaError(f"{e} (in {args.results})") from None
    for path in paths:
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
