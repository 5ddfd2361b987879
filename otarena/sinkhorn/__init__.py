"""The Meta OT Sinkhorn benchmark (Amos et al., ICML 2023, Table 1).

- :mod:`~otarena.sinkhorn.family`: problem families (``SINKHORN_FAMILY`` of a file in
  ``datasets/``), their plans per budget, the paper's test draws;
- :mod:`~otarena.sinkhorn.config`: initializer names, solver settings, the training
  configuration of a learned initializer (what run ids hash; light, no OTT-JAX);
- :mod:`~otarena.sinkhorn.metaot`, :mod:`~otarena.sinkhorn.artifacts`: the Meta OT model,
  its training (checkpointed) and its cache;
- :mod:`~otarena.sinkhorn.initializers`, :mod:`~otarena.sinkhorn.solve`,
  :mod:`~otarena.sinkhorn.timing`: the initializers, the timed solve, the measurements;
- :mod:`~otarena.sinkhorn.task`: the benchmark as a task of :mod:`otarena.task`.

This package's own import is light: its modules are imported where needed.
"""
