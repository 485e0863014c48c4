"""Builds the C++ CPU kernels (csrc/*.cpp) into the extension module ``sparse_ops._C``.

``python setup.py build_ext --inplace`` drops ``sparse_ops/_C*.so`` next to the package. The
build is portable (no -march=native): the kernels are compiled three times, for the default
x86-64 target, AVX2+FMA and AVX-512, and the module picks one at run time (csrc/README.md).
"""

from __future__ import annotations

import os
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup

ParallelCompile("NPY_NUM_BUILD_JOBS", default=os.cpu_count() or 1).install()

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, "csrc", "*.cpp")))

ext = Pybind11Extension(
    "sparse_ops._C",
    SOURCES,
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-Wall"],
    extra_link_args=["-fopenmp"],
    depends=sorted(glob(os.path.join("csrc", "*.h"))),
)

setup(
    # sparse_ops imports kernels (Triton); the simulator ships its energy table and topologies.
    packages=find_packages(include=["sparse_ops*", "kernels*", "simulator*"]),
    package_data={"simulator": ["*.yaml", "topologies/*.csv"]},
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
    zip_safe=False,
)
