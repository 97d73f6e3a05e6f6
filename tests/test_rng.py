"""The deterministic streams behind the built-in initializers: independent of threads, strides and chunking."""
from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
def test_shards_and_one_thread_hold_less_than_one_chunk_beyond_their_arrays(init: up.init.Initializer) -> None:
    """No chunk is held whole: in place (C-contiguous float32, a block split along dimension 0) or in runs (a transposed
    buffer, float16 drawn in float32, blocks split along dimension 1, several blocks at once), numpy's peak beyond the
    arrays stays under one float32 chunk. Shards take one thread by default; unsharded tensors with set_threads(1)."""
    import tracemalloc

    from unified_params.init import filler
    from unified_params.regions import Region

    shape = (3 * rng.CHUNK // 1000 + 1, 1000)
    halves = [Region.of(shape, (slice(None), slice(0, 400))), Region.of(shape, (slice(None), slice(400, None)))]
    cases = [
        lambda: init.fill(np.empty(shape, np.float32), 7, "layer.weight"),
        lambda: init.fill(np.empty(shape[::-1], np.float32).T, 7, "layer.weight"),
        lambda: init.fill(np.empty(shape, np.float16), 7, "layer.weight"),
        lambda: init.fill(np.empty((shape[0] // 2, 1000), np.float32), 7, "layer.weight",
                          Region.of(shape, (slice(0, shape[0] // 2),))),
        lambda: filler(init, 7, "layer.weight").many([(np.empty(r.block_shape, np.float32), r) for r in halves]),
        lambda: filler(init, 7, "layer.weight").many([(np.empty(r.block_shape[::-1], np.float32).T, r)
                                                       for r in halves]),
    ]
    arrays = [4 * math.prod(shape), 4 * math.prod(shape), 2 * math.prod(shape), 2 * math.prod(shape),
              4 * math.prod(shape), 4 * math.prod(shape)]
    for sharded, case, held in zip([False, False, False, True, True, True], cases, arrays):
        previous = up.init.set_threads(None if sharded else 1)
        try:
            case()
            tracemalloc.start()
            case()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            up.init.set_threads(previous)
        assert peak - held <= rng.CHUNK * 4, (peak - held, cases.index(case))


@st.composite
def _blocks(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    """A tensor of up to about 2.5 chunks and a block of it, split along any of its dimensions."""
    ndim = draw(st.integers(1, 3))
    inner = [draw(st.integers(1, 40)) for _ in range(ndim - 1)]
    first = draw(st.integers(1, max(1, int(2.5 * rng.CHUNK) // max(1, math.prod(inner)))))
    shape = (first, *inner)
    index = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        index.append(slice(a, draw(st.integers(a + 1, n))))
    return shape, tuple(index)


@settings(max_examples=30, deadline=None)
@given(block=_blocks(), which=st.sampled_from(["normal", "uniform", "truncated"]),
       dtype=st.sampled_from(["float32", "float64", "float16"]), transposed=st.booleans())
def test_a_block_in_any_memory_order_gets_the_same_values_as_the_whole_tensor(
        block: tuple[tuple[int, ...], tuple[slice, ...]], which: str, dtype: str, transposed: bool) -> None:
    """Blocks are drawn in runs (never a whole chunk) or in place; either way they equal the whole tensor's block."""
    from unified_params.regions import Region

    init = {"normal": up.init.Normal(0.5, 2.0), "uniform": up.init.Uniform(-3, 1),
            "truncated": up.init.TruncatedNormal(0, 1, -0.3, 1.2)}[which]
    shape, index = block
    region = Region.of(shape, index)
    whole = _value(init, shape, dtype)
    out = np.empty(region.block_shape[::-1], dtype).T if transposed else np.empty(region.block_shape, dtype)
    init.fill(out, 7, "layer.weight", region)
    np.testing.assert_array_equal(out, whole[index])
