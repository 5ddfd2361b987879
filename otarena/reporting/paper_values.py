"""The papers' numbers, as data: ``otarena/paper_values.json``, with the provenance of each
table under ``_provenance``. ``tables`` holds the L2-UVP tables (rows of cells by pair),
``timing_tables`` the Meta OT runtimes (seconds by family, initializer and threshold)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "paper_values.json"


@lru_cache(maxsize=1)
def load() -> dict:
    return json.loads(FILE.read_text())


def table(key: str) -> dict:
    """An L2-UVP table: ``{"metric", "columns", "rows": {row: {"label", "cells"}}}``."""
    return load()["tables"][key]


def provenance(key: str) -> str:
    return load()["_provenance"][key]


@lru_cache(maxsize=None)
def timing_table(key: str) -> dict:
    """A runtime table with float thresholds and (mean, std) tuples:
    ``{"source", "device", "prediction_seconds", "ratio", "seconds": {family: {init:
    {threshold: (mean, std)}}}}``."""
    found = load()["timing_tables"][key]
    return {**found, "source": provenance(key),
            "seconds": {family: {init: {float(t): tuple(v) for t, v in by_t.items()}
                                 for init, by_t in by_init.items()}
                        for family, by_init in found["seconds"].items()}}
