"""bench.host: the machine line and the report folder name what ran, torch's level included."""

from __future__ import annotations

from bench import host


def test_slug_and_header_name_a_lowered_torch(monkeypatch):
    for k in host.TORCH_ISA_ENV:
        monkeypatch.delenv(k, raising=False)
    plain = host.slug()
    assert "-torch-" not in plain
    assert f"at {host.torch_level()}" in host.header()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert host.slug() == f"{plain}-torch-{host.torch_level()}"
    assert "(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)" in host.header()
