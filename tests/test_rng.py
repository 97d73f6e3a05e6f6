"""The deterministic streams behind the built-in initializers: independent of threads, strides and chunking."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import unified_params as up
from unified_params import rng


def _value(init: up.init.Initializer, shape: tuple[int, ...], dtype: str = "float32", order: str = "C") -> np.ndarray:
    out = np.empty(shape, dtype, order=order)
    init.fill(out, 7, "layer.weight")
    return out


@pytest.mark.parametrize("init", [up.init.Normal(0.5, 2.0), up.init.Uniform(-3, 1), up.init.TruncatedNormal(0, 1),
                                  up.init.XavierNormal()])
def test_values_do_not_depend_on_the_number_of_threads(monkeypatch: pytest.MonkeyPatch,
                                                       init: up.init.Initializer) -> None:
    shape = (3 * rng.CHUNK // 1000 + 1, 1000)
    expected = _value(init, shape)
    monkeypatch.setattr(rng, "_pool", ThreadPoolExecutor(max_workers=1))
    np.testing.assert_array_equal(_value(init, shape), expected)
    monkeypatch.setattr(rng, "_pool", ThreadPoolExecutor(max_workers=5))
    np.testing.assert_array_equal(_value(init, shape), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_a_strided_output_gets_the_canonical_values(dtype: str) -> None:
    shape = (rng.CHUNK // 700 + 3, 700)
    expected = _value(up.init.Normal(), shape, dtype)
    native = np.empty(shape[::-1], dtype)
    up.init.Normal().fill(native.T, 7, "layer.weight")
    np.testing.assert_array_equal(native.T, expected)
    conv = np.empty((3, 3, 5, 7), dtype)
    up.init.Uniform().fill(conv.transpose(3, 2, 0, 1), 7, "layer.weight")
    np.testing.assert_array_equal(conv.transpose(3, 2, 0, 1), _value(up.init.Uniform(), (7, 5, 3, 3), dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_and_uniform_have_the_right_distribution(dtype: str) -> None:
    z = _value(up.init.Normal(1.0, 2.0), (1 << 20,), dtype)
    assert abs(z.mean() - 1.0) < 0.01 and abs(z.std() - 2.0) < 0.01
    assert abs(np.mean(np.abs(z - 1.0) > 2 * 3.0) - 0.0027) < 0.0005
    u = _value(up.init.Uniform(-2.0, 6.0), (1 << 20,), dtype)
    assert u.min() >= -2.0 and u.max() < 6.0 and abs(u.mean() - 2.0) < 0.02
    t = _value(up.init.TruncatedNormal(0.0, 1.0), (1 << 16,), dtype)
    assert t.min() >= -2.0 and t.max() <= 2.0


def test_values_are_pinned() -> None:
    """Changing the stream design changes every seeded init: it must be deliberate (docs/benchmarks.md)."""
    values = (_value(up.init.Normal(), (257, 33)), _value(up.init.Uniform(), (3, 5), "float64"),
              _value(up.init.Normal(), (600, 1000)))
    digest = hashlib.sha256(b"".join(v.tobytes() for v in values))
    assert digest.hexdigest()[:16] == PINNED


PINNED = "f32d1f99f89c3679"


def test_set_threads_changes_no_value_and_refuses_bad_counts() -> None:
    shape = (3 * rng.CHUNK // 1000 + 1, 1000)
    expected = _value(up.init.TruncatedNormal(0, 1), shape)
    previous = up.init.set_threads(1)
    try:
        assert up.init.threads() == 1
        np.testing.assert_array_equal(_value(up.init.TruncatedNormal(0, 1), shape), expected)
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(up.InitializerError, match=f"threads {bad!r} is not valid"):
                up.init.set_threads(bad)  # type: ignore[arg-type]
            assert up.init.threads() == 1
    finally:
        up.init.set_threads(None)
    assert up.init.threads() == previous


@pytest.mark.parametrize("init", [up.init.Normal(), up.init.Uniform(), up.init.TruncatedNormal(0, 1)])
def test_one_thread_holds_at_most_one_chunk_and_the_draws_scratch(init: up.init.Initializer) -> None:
    """A C-contiguous float32 tensor is drawn in place (the draws' scratch only); a transposed one through one chunk."""
    import tracemalloc

    from unified_params import draws

    shape = (3 * rng.CHUNK // 1000 + 1, 1000)
    up.init.set_threads(1)
    try:
        for out, extra in ((np.empty(shape, np.float32), 0), (np.empty(shape[::-1], np.float32).T, rng.CHUNK * 4)):
            tracemalloc.start()
            init.fill(out, 7, "layer.weight")
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak <= extra + draws.scratch_bytes(np.float32) + (1 << 14), (peak, extra)
    finally:
        up.init.set_threads(None)
