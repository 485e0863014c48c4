"""Builds the C++ CPU kernels (csrc/*.cpp) into the torch extension ``sparse_ops._C``.

``python setup.py build_ext --inplace`` drops ``sparse_ops/_C*.so`` next to the package.
Importing it registers the torch operators ``torch.ops.sparse_ops.*`` (csrc/torch_ops.cpp),
the only entry points into the kernels. The build is portable (no
-march=native): the kernels are compiled three times, for the default x86-64 target,
AVX2+FMA and AVX-512, and the module picks one at run time (csrc/README.md). The kernels run
on torch's intra-op thread team (at::parallel_for, csrc/team.h): compiled with -fopenmp, the
extension links the libgomp that torch itself loads (one OpenMP runtime in the process).
"""

from __future__ import annotations

import os
from glob import glob

from pybind11.setup_helpers import ParallelCompile
from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ParallelCompile("NPY_NUM_BUILD_JOBS", default=os.cpu_count() or 1).install()

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, "csrc", "*.cpp")))

# SPARSE_OPS_SANITIZE=1: an AddressSanitizer + UndefinedBehaviorSanitizer build for
# `make sanitize` (.ci/sanitize.sh), which loads the runtimes with LD_PRELOAD.
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer", "-g"] if os.environ.get("SPARSE_OPS_SANITIZE") else []

ext = CppExtension(
    "sparse_ops._C",
    SOURCES,
    include_dirs=[os.path.join(HERE, "csrc")],
    extra_compile_args=[
        "-O1" if SANITIZE else "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall",
        "-fvisibility=hidden", "-fopenmp", *SANITIZE,
    ],
    extra_link_args=["-fopenmp", *SANITIZE[:1]],
    depends=sorted(glob(os.path.join("csrc", "*.h"))),
)

# The wheel's only top-level names are the project's own: ``sparse_ops`` (the Triton kernels
# ship inside it as ``sparse_ops.kernels``, a link to the repository's ``kernels/`` folder) and
# the simulator as ``sparse_accel_sim`` (the repository's ``simulator/`` folder). Neither claims
# a generic name such as ``kernels``, which is Hugging Face's package that transformers probes.
TOP_LEVEL = {"sparse_ops": "sparse_ops", "sparse_accel_sim": "simulator"}

setup(
    packages=[*find_packages(include=["sparse_ops", "sparse_ops.*"]), "sparse_accel_sim"],
    package_dir={"sparse_accel_sim": TOP_LEVEL["sparse_accel_sim"]},
    package_data={"sparse_accel_sim": ["*.yaml", "topologies/*.csv"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=False)},
    zip_safe=False,
)
