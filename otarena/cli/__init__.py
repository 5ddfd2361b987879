"""The ``otarena`` command line: run, report, compare, verify, list, data, build-image-pair
(and ``metaot``, an alias of run/report for the Meta OT suite)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otarena.budgets import PROFILES
from otarena.cli import args as flags
from otarena.cli import metaot
from otarena.cli.args import EPILOG
from otarena.cli.data import cmd_build_image_pair, cmd_data, cmd_list
from otarena.cli.run import cmd_compare, cmd_report, cmd_run, cmd_verify
from otarena.errors import OtarenaError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="otarena", description=__doc__, epilog=EPILOG)
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the cells of a suite or a selection (solvers on "
                         "pairs, Sinkhorn initializers on problem families); write records",
                         epilog=EPILOG)
    flags.add_run_arguments(run)
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="LaTeX tables and a markdown summary from the records")
    rep.add_argument("--results", default="results", help="result store directory (default results/)")
    rep.add_argument("--out", default="reports", help="output directory (default reports/)")
    rep.add_argument("--suite", help="only the records of this suite's cells")
    rep.set_defaults(func=cmd_report)

    cmp = sub.add_parser("compare", help="run a solver file against baselines; write a "
                         "comparison table and figure", epilog=EPILOG)
    cmp.add_argument("solver_file", help="a Python file defining SOLVERS (see README)")
    cmp.add_argument("--pairs", required=True, help="comma-separated pair names")
    cmp.add_argument("--against", required=True, help="comma-separated baseline solver names")
    cmp.add_argument("--seeds", type=flags.seeds, help="e.g. 0,1,2 or 0-9 (default 0)")
    cmp.add_argument("--budget", default="smoke", help=f"{' | '.join(PROFILES)} (default smoke)")
    cmp.add_argument("--iterations", type=flags.positive, help="override the budget's iterations")
    cmp.add_argument("--eval-every", type=flags.positive, help="override the budget's evaluation period")
    cmp.add_argument("--eval-size", type=flags.eval_size, default=4096, help="evaluation points (default 4096)")
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
    bip.add_argument("--iterations", type=flags.positive, help="W2GN iterations per potential "
                     "(default: the recipe's, 50000 as the official pairs)")
    bip.add_argument("--pretrain-steps", type=flags.positive, help="identity pretraining steps (default 1000)")
    bip.add_argument("--batch-size", type=flags.positive, help="training batch (default 64)")
    bip.add_argument("--estimate-size", type=flags.positive, default=2**14,
                     help="samples for the variance constants (default 16384, as official)")
    bip.add_argument("--cost-size", type=flags.positive, default=64,
                     help="samples for the transport cost (default 64: one batch, as official)")
    bip.add_argument("--out", type=Path, help="output folder (default: the data directory's "
                     "otarena-built/FAMILY, where the pairs are read from)")
    bip.set_defaults(func=cmd_build_image_pair)

    metaot.add_arguments(sub)
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
