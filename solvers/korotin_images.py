"""Korotin et al. 2021's image solvers on CelebA64-like pairs: [W2], [MM] and [MM:R].

Settings of the official ``*_test_images_benchmark`` notebooks: batch 64 (4 at the smoke budget), Adam lr 3e-4
(0.9, 0.999), constant rate; networks in training mode while training, eval mode when
scored; the conjugate network starts as a copy of the potential when both are the same
architecture.

- ``W2-images``: W2GN with two ConvICNN64 (dropout 0.02, convolution weights clamped >= 0
  after every step), x_hat = grad psi_bar(y) detached, cycle weight 1e4, 50,001 iterations.
- ``MM-images``: maximin with psi = |x|^2/2 - ResNet_D(x) (WGAN-QC discriminator, not
  convex) and the map H = UNet(3, 3, base_factor=48) with batch norms; one psi step then 5
  H steps on E[psi(H(y)) - <H(y), y>], 15,001 outer iterations. Scored map: grad psi.
- ``MM-R-images``: [MM:R], the same networks with the roles of P and Q swapped: trained on
  the reversed pair, so the ResNet potential sits on Q and the UNet maps P -> Q; the UNet
  output is the scored forward map (the reversed potential's gradient is the inverse).

Identity pretraining: the notebooks call ``train_identity_map`` (Adam 1e-3, weight decay
1e-10, MSE, at most 1000 steps) on ``CubeUniformSampler(centered=True)`` times 4, i.e.
U[-2, 2); it stops below 1e-3, the UNet's below 3e-4. As in the notebooks (``MAX_ITER``
50,001 / 15,001), runs never stop early and after iterations 1, 101, ... both maps are
scored on fresh points and the best checkpoints are reported (the final iterate beside
them). The curves of ``MM-R-images`` are those of its reversed run, relabelled.
"""


from otarena.dual import BestIterate, DualSpec, Optimizer, Pretrain, solver, train
from otarena.solver import Fitted, Solver

ADAM = Optimizer("adam", lr=3e-4, b1=0.9, b2=0.999, weight_decay=0.0, cosine_final_fraction=None)
IDENTITY = Pretrain(sampler="centered-cube", scale=4.0, lr=1e-3, weight_decay=1e-10,
                    tolerance=1e-3, min_steps=0, sum_coordinates=False, amortizer_tolerance=3e-4)
PRETRAIN_STEPS = {"smoke": 2, "quick": 300, "paper": 1000}
EVAL_EVERY = {"smoke": 2, "quick": 100, "paper": 1000}
BATCH = {"smoke": 4, "quick": 64, "paper": 64}  # smoke: a CPU in CI cannot afford 64
EVAL_SIZE = {"smoke": 4, "quick": 512, "paper": 4096}  # curve evaluations (4096 as the papers)


def korotin_images(potential, amortizer, amortization, iterations, **more) -> DualSpec:
    return DualSpec(potential=potential, amortizer=amortizer, amortization=amortization,
                    conjugate_solver=None, inverse_solver=None, optimizer=ADAM, pretrain=IDENTITY,
                    pretrain_steps=PRETRAIN_STEPS, iterations=iterations, eval_every=EVAL_EVERY,
                    batch_size=BATCH, eval_size=EVAL_SIZE, stop=None,
                    best_iterate=BestIterate(every=100, size=EVAL_SIZE), **more)


W2 = korotin_images("conv-icnn64", "conv-icnn64", "cycle",
                    {"smoke": 2, "quick": 500, "paper": 50_001}, cycle_weight=1e4)
MM = korotin_images("resnet-d", "unet", "objective", {"smoke": 1, "quick": 150, "paper": 15_001},
                    amortizer_steps=5)


def _swap(key: str) -> str:
    return key.replace("_fwd", "_tmp").replace("_inv", "_fwd").replace("_tmp", "_inv")


def fit_reversed_seeds(pair, keys, budget):
    """[MM:R]: train on the reversed pair; its inverse map (the UNet) maps P -> Q."""
    fitted = train(pair.reversed(), MM, keys, budget)
    return [Fitted(forward=f.inverse, inverse=f.forward, iterations=f.iterations,
                   diverged=f.diverged, reported_iterate=f.reported_iterate,
                   alternatives={name: (inverse, forward)
                                 for name, (forward, inverse) in f.alternatives.items()},
                   curve=tuple({_swap(k): v for k, v in point.items()} for point in f.curve),
                   info={**f.info, "trained_on": "the reversed pair (potential on Q); forward "
                                                 "map = the UNet, inverse = grad of the potential"})
            for f in fitted]


_mm = solver("MM-images", MM)

SOLVERS = [
    solver("W2-images", W2, label="[W2]",
           description="Korotin: W2GN, two ConvICNN64 + cycle (CelebA64 setup)"),
    solver("MM-images", MM, label="[MM]",
           description="Korotin: maximin, ResNet_D potential + UNet map (CelebA64 setup)"),
    Solver("MM-R-images", lambda pair, key, budget: fit_reversed_seeds(pair, key[None], budget)[0],
           config={**_mm.config, "reversed": "trained on the reversed pair; the UNet is scored"},
           label="[MM:R]",
           description="Korotin: [MM] with P and Q swapped; the UNet is the forward map",
           fit_seeds=fit_reversed_seeds),
]
