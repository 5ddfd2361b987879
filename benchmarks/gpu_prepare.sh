#!/usr/bin/env bash
# Run HERE (the machine without a GPU), from anywhere in the checkout, before a GPU session:
# puts what the device machine lacks into two git-ignored folders that its `run` carries.
#
#   bash benchmarks/gpu_prepare.sh [--resume path/to/checkpoints.tar.gz]
#
#   .whl/       wheels for Python 3.12 on manylinux x86_64: ott-jax, jaxopt, submitit (pure
#               Python) and any requirement of theirs that the GPU image lacks
#   .gpu-data/  data/: OTARENA_DATA there (the HD checkpoints of $GPU_HD_DIMS, the official
#               constants, MNIST, the population grid .npy), copied from $OTARENA_DATA
#               (default ../shared/data); source.json: the commit and the sha256 of every
#               tracked file (benchmarks/gpu_source.py), so GPU records can name the commit;
#               checkpoints.tar.gz with --resume: the training state a previous session
#               brought back, which benchmarks/gpu_session.sh continues from
#
# Then it prints the size of what travels (tracked files + both folders; the limit is 64 MiB).
# Run it again after committing: source.json must describe the code that is sent.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

RESUME=""
while [ $# -gt 0 ]; do
  case "$1" in
    --resume) RESUME=${2:?--resume needs a file}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
SRC=${OTARENA_DATA:-../shared/data}
GPU_HD_DIMS=${GPU_HD_DIMS:-"8 16"}  # the pairs benchmarks/gpu_session.sh uses
# The versions the project is tested with (pyproject.toml: ott-jax 0.6 is tested).
WHEELS=${GPU_WHEELS:-"ott-jax==0.6.0 jaxopt==0.8.5 submitit==1.5.4"}
# Python packages of the GPU image ('cuda'), as the device README lists them (read there
# 2026-11-17): a requirement named here is not brought.
IMAGE="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp"

download() {  # pip's platform tags must match exactly: list the manylinux ones it may have
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "$@"
}

# -- wheels --------------------------------------------------------------------------
mkdir -p .whl
for spec in $WHEELS; do  # one version of each: two would stop the install there
  name=${spec%%==*}
  rm -f .whl/"${name//-/_}"-*.whl .whl/"$name"-*.whl
done
download $WHEELS
for round in 1 2 3 4 5; do  # requirements of the wheels (ott-jax's 'neural' extra too)
  missing=$(IMAGE="$IMAGE" "$PY" - <<'EOF'
import os, re, zipfile
from pathlib import Path
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {norm(n) for n in os.environ["IMAGE"].split()}
wheels = sorted(Path(".whl").glob("*.whl"))
have |= {norm(w.name.split("-")[0]) for w in wheels}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
need = set()
for w in wheels:
    meta = next(n for n in zipfile.ZipFile(w).namelist() if n.endswith(".dist-info/METADATA"))
    extras = [""] + (["neural"] if norm(w.name.split("-")[0]) == "ott-jax" else [])
    for line in zipfile.ZipFile(w).read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras):
                need.add(norm(req.name))
print(" ".join(sorted(need - have)))
EOF
)
  [ -z "$missing" ] && break
  echo "requirements the GPU image lacks: $missing"
  download $missing
done
echo "wheels: $(ls .whl | tr '\n' ' ')"

# -- data ------------------------------------------------------------------------------
[ -d "$SRC/w2-benchmark" ] || { echo "no official data at $SRC (set OTARENA_DATA)" >&2; exit 2; }
rm -rf .gpu-data/data
mkdir -p .gpu-data/data/w2-benchmark/Mix3toMix10 .gpu-data/data/mnist .gpu-data/data/world
for dim in $GPU_HD_DIMS; do
  cp "$SRC"/w2-benchmark/Mix3toMix10/"${dim}"_v1.pt "$SRC"/w2-benchmark/Mix3toMix10/"${dim}"_v2.pt \
    .gpu-data/data/w2-benchmark/Mix3toMix10/
done
cp "$SRC"/w2-benchmark/official_constants.json .gpu-data/data/w2-benchmark/
cp "$SRC"/mnist/*-ubyte.gz .gpu-data/data/mnist/
cp "$SRC"/world/pop-15min.npy .gpu-data/data/world/
chmod -R u+w .gpu-data/data  # the shared copy is read-only; a later prepare replaces this one
pairs=$(for d in $GPU_HD_DIMS; do printf 'hd-%s,' "$d"; done)
OTARENA_DATA=$PWD/.gpu-data/data "$PY" -m otarena.cli data verify "${pairs%,}" >/dev/null \
  && OTARENA_DATA=$PWD/.gpu-data/data "$PY" -m otarena.cli data verify mnist >/dev/null \
  && echo "data: checked against datasets/manifest.json" \
  || { echo "data: otarena data verify failed (run it to see which file)" >&2; exit 1; }

# -- the code's commit, and training state to resume -------------------------------------
"$PY" -m benchmarks.gpu_source write .gpu-data/source.json
rm -f .gpu-data/checkpoints.tar.gz
if [ -n "$RESUME" ]; then
  cp "$RESUME" .gpu-data/checkpoints.tar.gz
  echo "resume: $(tar -tzf .gpu-data/checkpoints.tar.gz | grep -c '\.pkl$') checkpoints"
fi

# -- what travels ------------------------------------------------------------------------
bytes_of() { du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1; }
tracked=$(git ls-files -z | bytes_of)
untracked=$(git ls-files -z --others --exclude-standard | bytes_of)
whl=$(du -sb .whl | cut -f1)
gpu_data=$(du -sb .gpu-data | cut -f1)
awk -v t="${tracked:-0}" -v u="${untracked:-0}" -v w="$whl" -v d="$gpu_data" 'BEGIN {
  m = 1048576; total = (t + u + w + d) / m
  printf "sizes (MiB): tracked %.1f, untracked %.1f, .whl %.1f, .gpu-data %.1f; total %.1f of 64\n",
    t / m, u / m, w / m, d / m, total
  exit (total < 60 ? 0 : 1) }' || { echo "too large to travel: carry less" >&2; exit 1; }
