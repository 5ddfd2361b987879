"""The image solver adapters: names, labels, the papers' settings, and [MM:R]'s role swap."""

import dataclasses

import jax
import numpy as np
import pytest

from otarena import conjugate, metrics, pairs, plugins, solver
from otarena.budgets import Budget
from otarena.dual import engine_for


def module(name):
    return next(m for m in plugins.load_folder("solvers") if m.__name__.endswith(name))


CONV_ROWS = {"conv-cycle": "Cycle / None", "conv-objective": "Objective / None",
             "conv-cycle-lbfgs-high-precision": "Cycle / L-BFGS",
             "conv-objective-lbfgs-high-precision": "Objective / L-BFGS",
             "conv-regression-lbfgs-high-precision": "Regression / L-BFGS",
             "conv-cycle-adam": "Cycle / Adam",
             "conv-objective-adam": "Objective / Adam", "conv-regression-adam": "Regression / Adam"}


def test_registry_has_the_image_rows():
    registry = solver.registry()
    for name, label in CONV_ROWS.items():
        assert registry[name].label == label
        assert registry[name].config["potential"] == registry[name].config["amortizer"] == "conv-potential"
    assert registry["W2-images"].label == "[W2]"
    assert registry["MM-images"].label == "[MM]"
    assert registry["MM-R-images"].label == "[MM:R]"


def test_amos_image_settings():
    rows = {s.name: s.config for s in module("amos_images").SOLVERS}
    for name, cfg in rows.items():
        assert cfg["batch_size"]["paper"] == 64 and cfg["iterations"]["paper"] == 50_000
        # w2ot's image_benchmark: num_train_iter 50,001, the last logged iteration 50,000
        assert cfg["cycle_weight"] == 1e4
        opt = cfg["optimizer"]
        assert (opt["name"], opt["lr"], opt["b1"], opt["b2"], opt["weight_decay"],
                opt["cosine_final_fraction"]) == ("adamw", 1e-4, 0.5, 0.5, 1e-4, 1e-4)
        pre = cfg["pretrain"]
        assert (pre["sampler"], pre["scale"], pre["lr"], pre["tolerance"], pre["min_steps"]) == \
            ("uniform", 1.0, 1e-4, 1e-6, 1001)  # w2ot: stop when i > 1000 and loss < 1e-6
        assert cfg["pretrain_steps"]["paper"] == 10_001
        # the row's own solver refines the inverse (w2ot's push_inv), else w2ot's default
        expected = cfg["conjugate_solver"] or conjugate.describe(
            conjugate.SETTINGS["lbfgs-high-precision"])
        assert cfg["inverse_solver"] == expected
    assert rows["conv-cycle"]["amortization"] == "cycle"  # W2GN: the cycle also trains psi
    assert rows["conv-cycle-adam"]["amortization"] == "cycle-finetune"
    assert rows["conv-regression-lbfgs-high-precision"]["conjugate_solver"] == conjugate.describe(
        conjugate.SETTINGS["lbfgs-high-precision"])
    assert rows["conv-objective"]["conjugate_solver"] is None


def test_korotin_image_settings():
    k = module("korotin_images")
    for spec in (k.W2, k.MM):
        assert (spec.optimizer.name, spec.optimizer.lr, spec.optimizer.b1, spec.optimizer.b2,
                spec.optimizer.weight_decay, spec.optimizer.cosine_final_fraction) == \
            ("adam", 3e-4, 0.9, 0.999, 0.0, None)
        assert spec.batch_size["paper"] == 64 and spec.inverse_solver is None
    assert (k.W2.potential, k.W2.amortizer, k.W2.amortization, k.W2.cycle_weight,
            k.W2.iterations["paper"]) == ("conv-icnn64", "conv-icnn64", "cycle", 1e4, 50_001)
    assert (k.MM.potential, k.MM.amortizer, k.MM.amortization, k.MM.amortizer_steps,
            k.MM.iterations["paper"]) == ("resnet-d", "unet", "objective", 5, 15_001)
    # the notebooks' pretraining: U[-2, 2) (centered unit cube times 4), the UNet to 3e-4
    assert (k.W2.pretrain.sampler, k.W2.pretrain.scale, k.W2.pretrain.tolerance,
            k.MM.pretrain.amortizer_tolerance) == ("centered-cube", 4.0, 1e-3, 3e-4)
    assert k.W2.stop is None and k.W2.best_iterate.every == 100


def test_image_models_build_for_images_only():
    from otarena.models import networks

    with pytest.raises(ValueError, match="3x64x64"):
        networks.build("conv-icnn64", 16)
    unet = networks.build("unet", 12288)
    assert not unet.is_potential and unet.update_stats is not None
    icnn = networks.build("conv-icnn64", 12288)
    assert icnn.is_potential and icnn.train_apply is not None
    raw = icnn.init(jax.random.key(0), None)
    projected = icnn.project(raw)
    assert float(projected["pos_features.4.weight"].min()) >= 0.0
    assert float(projected["quadratic_layers.0.linear.weight"].min()) < 0.0  # not clamped


def test_reversed_maximin_scores_the_amortizer_as_forward_map(monkeypatch):
    """[MM:R] on a pair = [MM] on the reversed pair, with forward and inverse swapped."""
    k = module("korotin_images")
    hd_mm = dataclasses.replace(module("solvers.korotin").MM, iterations={"smoke": 6},
                                pretrain_steps={"smoke": 20}, eval_every={"smoke": 3},
                                amortizer_steps=2, batch_size=256)
    monkeypatch.setattr(k, "MM", hd_mm)
    pair = pairs.load("hd-2")
    [fitted] = k.fit_reversed_seeds(pair, jax.random.key(0)[None], Budget("smoke"))
    assert engine_for(pair.reversed(), hd_mm, Budget("smoke")).spec.amortizer == "dense-nn"
    x = pair.sample_source(jax.random.key(2), 16)
    assert fitted.forward(x).shape == x.shape
    last = fitted.curve[-1]
    assert {"l2_uvp_inv", "cos_inv", "iteration"} <= set(last) and "l2_uvp_fwd" not in last
    # the reversed run scored its potential's gradient (Q -> P) on the same coupled points:
    # that is this pair's inverse map, so the relabelled curve (of the final iterate) must
    # match a fresh evaluation of the final maps; the reported maps are the best checkpoints
    assert fitted.reported_iterate == "best"
    final_forward, final_inverse = fitted.alternatives["final"]
    scores = metrics.evaluate(pair, final_forward, final_inverse, size=metrics.DEFAULT_EVAL_SIZE)
    assert scores["l2_uvp_inv"] == pytest.approx(last["l2_uvp_inv"], rel=1e-4)
    assert scores["cos_inv"] == pytest.approx(last["cos_inv"], rel=1e-4)
    assert np.isfinite(scores["l2_uvp_fwd"]) and scores["l2_uvp_fwd"] != pytest.approx(
        scores["l2_uvp_inv"], rel=1e-3)
