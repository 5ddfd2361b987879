"""``otarena metaot run|report``: the Meta OT Sinkhorn suite (``metaot-sinkhorn``) on the CLI.

``run_suite`` (in ``otarena.sinkhorn_bench``) is the plain entry point; this module only
parses flags and prints. Records go to ``<results>/metaot-sinkhorn.jsonl`` in the normal
result store; trained Meta OT models to the artifact cache (``--artifacts``).
"""

from __future__ import annotations

import argparse

from otarena.errors import OtarenaError

RECORDS_FILE = "metaot-sinkhorn.jsonl"
FAMILIES = ("mnist", "spherical")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad list of numbers {text!r}: use e.g. 1e-2,1e-3") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be positive, got {text!r}")
    return values


def run_suite(budget, seeds, store, **kwargs) -> list[dict]:
    """The suite's entry point for a general ``--suite`` mechanism (see sinkhorn_bench)."""
    from otarena import sinkhorn_bench

    return sinkhorn_bench.run_suite(budget, seeds, store, **kwargs)


def cmd_run(args) -> int:
    from otarena import report_metaot, sinkhorn_bench
    from otarena.budgets import Budget
    from otarena.store import Store

    families = _csv(args.families)
    for f in families:
        if f not in FAMILIES:
            raise OtarenaError(f"unknown family {f!r}; choose from {', '.join(FAMILIES)}")
    initializers = _csv(args.initializers)
    for name in initializers:
        if name not in sinkhorn_bench.INITIALIZERS:
            raise OtarenaError(f"unknown initializer {name!r}; choose from "
                               f"{', '.join(sinkhorn_bench.INITIALIZERS)}")
    budget = Budget(args.budget, iterations=args.iterations)
    store = Store(args.results, filename=RECORDS_FILE)
    overrides = {"test_instances": args.test_instances, "repeats": args.repeats,
                 "thresholds": args.thresholds, "dtype": args.dtype,
                 "curve_iterations": args.curve_iterations}
    options = {"mnist": {"grid": args.mnist_grid}} if args.mnist_grid else {}
    if args.population_file:
        options["spherical"] = {"population_file": args.population_file}
    records = run_suite(budget, args.seeds, store, families=families,
                        initializers=initializers, artifacts=args.artifacts, force=args.force,
                        retrain=args.retrain, family_options=options, plan_overrides=overrides,
                        log=(lambda _: None) if args.quiet else print)
    df = report_metaot.frame(records)
    cells = report_metaot.summary(df, 1e-2) if len(df) else {}
    print()
    for family, rows in cells.items():
        print(f"{family}: seconds and iterations to marginal error 1e-2 (mean ± std):")
        for init, c in rows.items():
            print(f"  {init:<10} {report_metaot.pm(*c['seconds']):>22} s   "
                  f"{c['iterations'][0]:6.1f} ± {c['iterations'][1]:.1f} iterations")
        t, i = report_metaot.ratio(rows), report_metaot.ratio(rows, what="iterations")
        if t:
            print(f"  t_zeros/t_Meta = {t:.2f} (paper {report_metaot.PAPER['ratio'][family]}), "
                  f"iterations zeros/Meta = {i:.2f}")
    print(f"\n{len(records)} records in {store.path}")
    return 0


def cmd_report(args) -> int:
    from otarena import report_metaot
    from otarena.store import Store

    records = report_metaot.suite_records(Store(args.results).records())
    if not records:
        raise OtarenaError(f"no metaot-sinkhorn records in {args.results}; "
                           f"run `otarena metaot run` first")
    for path in report_metaot.write(records, args.out):
        print(path)
    return 0


def add_arguments(subparsers, epilog: str = "") -> None:
    """Add ``metaot run`` and ``metaot report`` to the ``otarena`` parser."""
    from otarena.cli import _positive, _seeds

    top = subparsers.add_parser("metaot", epilog=epilog,
                                help="Meta OT Sinkhorn suite (metaot-sinkhorn): Table 1, error curves")
    sub = top.add_subparsers(dest="metaot_command", required=True)

    run = sub.add_parser("run", epilog=epilog,
                         help="train Meta OT models (cached) and time Sinkhorn per initializer")
    run.add_argument("--families", default="mnist,spherical",
                     help="comma-separated: mnist,spherical (default both)")
    run.add_argument("--initializers", default="zeros,gaussian,meta-ot,ott-meta",
                     help="comma-separated: zeros,gaussian,meta-ot,ott-meta (default all)")
    run.add_argument("--seeds", type=_seeds, default=[0],
                     help="Meta OT training seeds, e.g. 0,1,2 or 0-9 (default 0)")
    run.add_argument("--budget", default="smoke", help="smoke | quick | paper (default smoke)")
    run.add_argument("--iterations", type=_positive, help="override Meta OT training iterations")
    run.add_argument("--test-instances", type=_positive, help="override the number of test instances")
    run.add_argument("--repeats", type=_positive, help="timed calls per instance (median)")
    run.add_argument("--thresholds", type=_floats, help="marginal errors to time, e.g. 1e-2,1e-3")
    run.add_argument("--curve-iterations", type=_positive, help="length of the error curves")
    run.add_argument("--dtype", choices=["float32", "float64"],
                     help="override the budget's dtype (paper: float64)")
    run.add_argument("--mnist-grid", metavar="1d|2d",
                     help="mnist atoms: 1d = linspace(0,1,784), the paper's code when Table 1 "
                          "was made (default); 2d = the 28x28 pixel grid of the paper's text")
    run.add_argument("--population-file", metavar="NAME",
                     help="spherical: the grid file in $OTARENA_DATA/world/ (default: the "
                          "paper's adjusted variant if present, else pop-15min.npy)")
    run.add_argument("--artifacts", metavar="DIR",
                     help="trained-model cache (default $OTARENA_ARTIFACTS or "
                          "~/.cache/otarena/artifacts)")
    run.add_argument("--retrain", action="store_true", help="train even if a cached model exists")
    run.add_argument("--results", default="results", help="result store directory (default results/)")
    run.add_argument("--force", action="store_true", help="redo records already in the store")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", epilog=epilog,
                         help="Table 1 (LaTeX), error-curve figures and a markdown section")
    rep.add_argument("--results", default="results", help="result store directory (default results/)")
    rep.add_argument("--out", default="reports", help="output directory (default reports/)")
    rep.set_defaults(func=cmd_report)
