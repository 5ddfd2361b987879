"""asv: drawing one HD target batch of 1024 (source sample + ground-truth map).

``time_otarena`` is otarena's jitted JAX sampler; ``time_official_style`` the PyTorch
reference that pushes each batch through the two ICNNs with autograd, as the official
code does. Both run on the same device kind (CUDA for PyTorch where JAX has a GPU).
"""

from benchmarks.sampling_speed import BATCH, OfficialSide, OtarenaSide


class TargetBatch:
    params = [2, 16, 128]
    param_names = ["dim"]
    warmup_time = 0.5

    def setup(self, dim):
        self.ours = OtarenaSide(dim)
        self.official = OfficialSide(dim)

    def time_otarena(self, dim):
        self.ours.draw(BATCH)

    def time_official_style(self, dim):
        self.official.draw(BATCH)
