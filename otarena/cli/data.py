"""``otarena list``, ``data`` and ``build-image-pair``."""

from __future__ import annotations

from pathlib import Path

from otarena.budgets import PROFILES
from otarena.cli.args import csv
from otarena.errors import OtarenaError


def cmd_list(args) -> int:
    if args.what == "suites":
        from otarena import suites

        for suite in suites.SUITES.values():
            sizes = ", ".join(f"{p} {suite.size(p)}" for p in PROFILES)
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
    for name in csv(what):
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
    from otarena import image_recipe

    recipe = _recipe(args.family)
    levels = csv(args.levels) if args.levels else None
    unknown = sorted(set(levels or []) - set(recipe["levels"]))
    if unknown:
        raise OtarenaError(f"no level {', '.join(unknown)} in {recipe['family']}; "
                           f"levels: {', '.join(recipe['levels'])}")
    overrides = {k: v for k, v in (("iterations", args.iterations),
                                   ("pretrain_steps", args.pretrain_steps),
                                   ("batch_size", args.batch_size)) if v is not None}
    path = image_recipe.build_family(recipe, levels, overrides, estimate_size=args.estimate_size,
                                    cost_size=args.cost_size, out=args.out)
    print(f"built: {path}")
    return 0
