"""``otarena metaot run|report``: an alias kept for the Meta OT flags of earlier versions.

It only renames flags and calls ``otarena run --suite metaot-sinkhorn`` / ``otarena report
--suite metaot-sinkhorn``: ``--families`` is ``--pairs``, ``--initializers`` is
``--solvers``, ``--mnist-grid G`` is ``--pair-option mnist.grid=G``, ``--population-file F``
is ``--pair-option spherical.population_file=F``; every other flag is the same.
"""

from __future__ import annotations

import argparse

from otarena.cli import args as flags
from otarena.cli.run import cmd_report, cmd_run
from otarena.sinkhorn.config import SUITE


def run(args) -> int:
    options = list(args.pair_option or [])
    if args.mnist_grid:
        options.append(("mnist", "grid", args.mnist_grid))
    if args.population_file:
        options.append(("spherical", "population_file", args.population_file))
    suite = argparse.Namespace(**{**vars(args), "suite": SUITE, "pairs": args.families,
                                  "solvers": args.initializers, "pair_option": options})
    return cmd_run(suite)


def report(args) -> int:
    return cmd_report(argparse.Namespace(**{**vars(args), "suite": SUITE}))


def add_arguments(subparsers) -> None:
    """Add ``metaot run`` and ``metaot report`` to the ``otarena`` parser."""
    top = subparsers.add_parser("metaot", epilog=flags.EPILOG,
                                help="alias: the metaot-sinkhorn suite of `otarena run` / `report`")
    sub = top.add_subparsers(dest="metaot_command", required=True)
    run_parser = sub.add_parser("run", epilog=flags.EPILOG,
                                help="= otarena run --suite metaot-sinkhorn (--families = "
                                     "--pairs, --initializers = --solvers)")
    flags.add_run_arguments(run_parser)
    run_parser.set_defaults(suite=SUITE)
    for action in run_parser._actions:  # the alias's own names for --pairs and --solvers
        if action.dest in ("pairs", "solvers", "suite"):
            action.help = argparse.SUPPRESS
    run_parser.add_argument("--families", help="comma-separated problem families (default all)")
    run_parser.add_argument("--initializers", help="comma-separated initializers (default all)")
    run_parser.add_argument("--mnist-grid", metavar="1d|2d",
                            help="mnist atoms: 1d = linspace(0,1,784), the paper's code when "
                                 "Table 1 was made (default); 2d = the 28x28 pixel grid")
    run_parser.add_argument("--population-file", metavar="NAME",
                            help="spherical: the grid file in $OTARENA_DATA/world/")
    run_parser.set_defaults(func=run)
    rep = sub.add_parser("report", epilog=flags.EPILOG, help="= otarena report --suite metaot-sinkhorn")
    rep.add_argument("--results", default="results", help="result store directory (default results/)")
    rep.add_argument("--out", default="reports", help="output directory (default reports/)")
    rep.set_defaults(func=report)
