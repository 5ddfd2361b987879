"""mnist64-w2gn: an offline image benchmark built by the CelebA64 recipe from MNIST digits.

NOT CelebA64 and not an official pair: otarena builds it with ``otarena build-image-pair
mnist64-w2gn`` (``otarena/image_pairs.py``) from data on these machines, the way Korotin
et al. built CelebA64:

- Source P: MNIST training digits 0..29,999, resized to 64x64 (bilinear), grey replicated
  to RGB, in [-1, 1], plus pixel noise N(0, 0.01^2) — 12288 dimensions like CelebA64.
- Targets, in the role of the Early/Mid/Late generators: digits 30,000..44,999 (v1) and
  45,000..59,999 (v2), blurred and tinted — strongly for ``early`` (blur 2 px, strong warm
  or cool tint), less for ``mid``, slightly for ``late`` — so the maps shrink from early to
  late as CelebA64's do.
- Two ConvICNN64 potentials per level trained by W2GN from P to the noisy v1 / v2 targets
  (the official building notebook's settings, ``image_recipe.W2GN_DEFAULTS``), averaged:
  Q = grad((psi_v1 + psi_v2) / 2) # P, no standardization. Constants computed at build time
  with the official estimators; the manifest of the build records them with the sha256 of
  the weights, the settings, the device and the versions.

The weights live in ``$OTARENA_DATA/otarena-built/mnist64-w2gn/`` (released builds go
there too); a build on the same platform and versions is byte-for-byte reproducible.
"""

from otarena import image_recipe


def _target(start: int, blur: float, tint: list[float], seed: int) -> dict:
    return {"dataset": "mnist", "split": "train", "range": [start, start + 15_000],
            "blur": blur, "tint": tint, "seed": seed}


RECIPE = {
    "family": "mnist64-w2gn",
    "source": {"dataset": "mnist", "split": "train", "range": [0, 30_000]},
    "levels": {
        "early": {"v1": _target(30_000, 2.0, [1.0, 0.8, 0.55], 11),
                  "v2": _target(45_000, 2.0, [0.55, 0.8, 1.0], 12)},
        "mid": {"v1": _target(30_000, 1.2, [1.0, 0.88, 0.72], 21),
                "v2": _target(45_000, 1.2, [0.72, 0.88, 1.0], 22)},
        "late": {"v1": _target(30_000, 0.6, [1.0, 0.95, 0.88], 31),
                 "v2": _target(45_000, 0.6, [0.88, 0.95, 1.0], 32)},
    },
    "noise_std": 0.01,
}

PAIR_FAMILY = image_recipe.built_family(
    RECIPE, "otarena-built (not official): MNIST digits at 64x64x3 + noise -> gradient of the "
            "mean of two ConvICNN64 trained by W2GN toward blurred, tinted digits (CelebA64 recipe)")
