"""The study's two tasks: scikit-learn's digits and a sparse teacher-student problem.

Both are small enough for 2 CPU cores: tensors ``(x_train, y_train, x_test, y_test)``.
"""

from __future__ import annotations

import torch

TASKS = ("digits", "teacher")


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``load_digits`` (1797 8x8 images, 10 classes, shipped with scikit-learn), standardised,
    split 80/20 with a fixed permutation (``seed``)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    cut = int(0.8 * len(x))
    mean, std = x[:cut].mean(0), x[:cut].std(0) + 1e-3
    x = (x - mean) / std
    return x[:cut], y[:cut], x[cut:], y[cut:]


def teacher(seed: int = 0, n_train: int = 4000, n_test: int = 2000, dim: int = 32,
            hidden: int = 64, classes: int = 10, density: float = 0.25) -> tuple[torch.Tensor, ...]:
    """Gaussian inputs ``(n, dim)`` labelled by the argmax of a random MLP teacher
    ``dim → hidden → classes`` whose weights keep a random ``density`` of their entries."""
    g = torch.Generator().manual_seed(10_000 + seed)
    w1 = torch.randn(hidden, dim, generator=g) * (torch.rand(hidden, dim, generator=g) < density)
    w2 = torch.randn(classes, hidden, generator=g) * (
        torch.rand(classes, hidden, generator=g) < density)
    x = torch.randn(n_train + n_test, dim, generator=g)
    y = (torch.relu(x @ w1.t() * (2.0 / (density * dim)) ** 0.5) @ w2.t()).argmax(1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def load(name: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    if name == "digits":
        return digits(seed)
    if name == "teacher":
        return teacher(seed)
    raise ValueError(f"task: expected one of {TASKS}, got {name!r}")
