"""The README's calls on architectures written by others (issue 16): transformers GPT-2, BERT, ViT and ResNet,
keras.applications MobileNetV2, a keras-hub GPT-2 backbone and Gluon's model-zoo resnet18_v1, tiny configurations and
no downloaded weights.

On each: counts equal the framework's own, the README's init selection changes exactly the selected tensors (every
linear and conv weight, no norm scale), the forward stays finite, save/load into a fresh instance is bitwise, and
pm.grads with the default loss equals the framework's own gradient of the first output's sum.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up

README = {"layer": ("linear", "conv"), "kind": "weight"}
ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_this_selection_and_meta_device_init() -> None:
    text = (ROOT / "README.md").read_text()
    assert 'pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=0)' in text
    assert 'with torch.device("meta"):' in text and 'pm.materialize(device="cpu")' in text


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16,
                                      bos_token_id=0, eos_token_id=0))


def _bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                vocab_size=100, max_position_embeddings=16))


def _vit() -> nn.Module:
    from transformers import ViTConfig, ViTModel

    return ViTModel(ViTConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                              image_size=16, patch_size=4))


def _resnet() -> nn.Module:
    from transformers import ResNetConfig, ResNetModel

    return ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))


def _tokens() -> torch.Tensor:
    return torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def _image() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


TORCH = {"gpt2": (_gpt2, _tokens), "bert": (_bert, _tokens), "vit": (_vit, _image), "resnet": (_resnet, _image)}


def _first(out: Any) -> torch.Tensor:
    return out if torch.is_tensor(out) else out.to_tuple()[0]


def _torch_pair(name: str) -> tuple[nn.Module, Callable[[], torch.Tensor]]:
    build, make_input = TORCH[name]
    torch.manual_seed(0)
    return build().eval(), make_input


@pytest.mark.parametrize("name", list(TORCH))
def test_transformers_counts_names_and_the_readme_selection(name: str) -> None:
    model, make_input = _torch_pair(name)
    pm = up.wrap(model)
    assert pm.num_params(trainable=True) == sum(p.numel() for p in model.parameters())
    assert set(pm.names()) == set(model.state_dict())
    before = {n: t.clone() for n, t in model.state_dict(keep_vars=True).items()}
    chosen = {id(v.native) for v in pm.init(up.init.XavierUniform(), **README, seed=0).collect(**README).values()}
    changed = {id(t) for n, t in model.state_dict(keep_vars=True).items() if not torch.equal(t, before[n])}
    assert changed == chosen
    dense = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
    norms = {id(m.weight) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm))}
    assert dense <= chosen and not norms & chosen
    with torch.no_grad():
        assert torch.isfinite(_first(model(make_input()))).all()


@pytest.mark.parametrize("name", list(TORCH))
def test_transformers_save_load_and_own_state_dict_into_fresh_instances(name: str, tmp_path: Path) -> None:
    model, _ = _torch_pair(name)
    up.wrap(model).init(up.init.XavierUniform(), **README, seed=1).save(tmp_path / "m.safetensors")
    fresh, other = TORCH[name][0](), TORCH[name][0]()
    up.wrap(fresh).load(tmp_path / "m.safetensors")
    up.wrap(other).load_state_dict(model.state_dict())
    for target in (fresh, other):
        state = target.state_dict()
        assert state.keys() == model.state_dict().keys()
        assert all(torch.equal(state[n], t) for n, t in model.state_dict().items())


@pytest.mark.parametrize("name", list(TORCH))
def test_transformers_save_pretrained_folder_shards_and_file_load_strictly(name: str, tmp_path: Path) -> None:
    from safetensors import safe_open

    model, _ = _torch_pair(name)
    model.save_pretrained(tmp_path / "one")
    model.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    assert len(list((tmp_path / "shards").glob("*.safetensors"))) > 1
    with safe_open(tmp_path / "one" / "model.safetensors", "pt") as f:
        saved = set(f.keys())
    if name == "vit":
        assert saved != set(model.state_dict()), "transformers saves ViT under its checkpoint names"
    for path in (tmp_path / "one", tmp_path / "one" / "model.safetensors", tmp_path / "shards"):
        torch.manual_seed(1)
        fresh = TORCH[name][0]()
        up.wrap(fresh).load(path)
        assert all(torch.equal(fresh.state_dict()[n], t) for n, t in model.state_dict().items()), path


def test_gpt2_save_pretrained_holds_one_name_of_the_tied_pair_and_loads_into_head_or_base(tmp_path: Path) -> None:
    from safetensors import safe_open
    from transformers import GPT2Model

    model, _ = _torch_pair("gpt2")
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys() and "transformer.wte.weight" in f.keys()
    fresh = _gpt2()
    up.wrap(fresh).load(tmp_path)
    assert torch.equal(fresh.lm_head.weight, model.lm_head.weight)
    assert fresh.lm_head.weight.data_ptr() == fresh.transformer.wte.weight.data_ptr()
    base = GPT2Model(model.config)
    up.wrap(base).load(tmp_path / "model.safetensors")
    assert all(torch.equal(base.state_dict()[n], t) for n, t in model.transformer.state_dict().items())


@pytest.mark.parametrize("name", list(TORCH))
def test_transformers_grads_with_the_default_loss(name: str) -> None:
    model, make_input = _torch_pair(name)
    x = make_input()
    grads = up.wrap(model).grads(x)
    _first(model(x)).sum().backward()
    native = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(native)
    for n, g in native.items():
        np.testing.assert_allclose(grads[n], g.numpy(), rtol=1e-4, atol=1e-6, err_msg=n)


def test_keras_mobilenet_v2(tmp_path: Path) -> None:
    import keras

    def build() -> Any:
        return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)

    keras.utils.set_random_seed(0)
    model = build()
    pm = up.wrap(model)
    assert pm.num_params() == model.count_params()
    assert pm.num_params(trainable=True) == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    before = {id(v): np.array(v.numpy()) for v in model.weights}
    chosen = {id(v.native) for v in pm.init(up.init.XavierUniform(), **README, seed=0).collect(**README).values()}
    assert {id(v) for v in model.weights if not np.array_equal(before[id(v)], v.numpy())} == chosen
    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    kernels = {id(w) for layer in model.layers if isinstance(layer, convs) for w in layer.weights if w.ndim > 1}
    assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers)
    assert kernels == chosen and not chosen & {id(layer.gamma) for layer in model.layers if hasattr(layer, "gamma")}
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert np.isfinite(keras.ops.convert_to_numpy(model(x, training=False))).all()
    pm.save(tmp_path / "m.safetensors")
    fresh = build()
    up.wrap(fresh).load(tmp_path / "m.safetensors")
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, fresh.weights))
    grads = pm.grads(x)
    assert len(grads) == len(model.trainable_variables)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total = tf.reduce_sum(model(x, training=False))
        native = tape.gradient(total, model.trainable_variables)
        views = {id(p.native): name for name, p in pm.items()}
        for v, g in zip(model.trainable_variables, native):
            got = pm[views[id(v)]]
            np.testing.assert_allclose(np.sort(grads[got.name].ravel()), np.sort(g.numpy().ravel()), rtol=1e-3,
                                       atol=1e-5, err_msg=got.name)


def test_keras_hub_gpt2_backbone(tmp_path: Path) -> None:
    import keras
    import keras_hub

    def build() -> Any:
        return keras_hub.models.GPT2Backbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
                                             intermediate_dim=64, max_sequence_length=16)

    keras.utils.set_random_seed(0)
    model = build()
    pm = up.wrap(model)
    assert pm.num_params() == model.count_params()
    assert pm.layer("position_embedding").native_layer is model.get_layer("position_embedding")
    before = {id(v): np.array(v.numpy()) for v in model.weights}
    chosen = {id(v.native) for v in pm.init(up.init.XavierUniform(), **README, seed=0).collect(**README).values()}
    assert {id(v) for v in model.weights if not np.array_equal(before[id(v)], v.numpy())} == chosen
    dense = {id(layer.kernel) for layer in model._flatten_layers() if type(layer) is keras.layers.Dense}
    assert len(dense) == 4 and dense == chosen
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 100, (2, 8)).astype("int32"), "padding_mask": np.ones((2, 8), "int32")}
    out = keras.ops.convert_to_numpy(model(x, training=False))
    assert out.shape == (2, 8, 32) and np.isfinite(out).all()
    pm.save(tmp_path / "m.safetensors")
    fresh = build()
    up.wrap(fresh).load(tmp_path / "m.safetensors")
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, fresh.weights))
    assert np.array_equal(keras.ops.convert_to_numpy(fresh(x, training=False)), out)


def test_gluon_model_zoo_resnet18_v1(tmp_path: Path) -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    from mxnet.gluon.model_zoo import vision

    def build() -> Any:
        net = vision.resnet18_v1(pretrained=False, classes=10, thumbnail=True)
        net.initialize()
        return net

    mx.random.seed(0)
    x = mx.nd.array(np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32))
    model = build()
    pm = up.wrap(model).materialize(x)
    params = list(model.collect_params().values())
    assert pm.num_params() == sum(p.data().size for p in params)
    assert pm.num_params(trainable=True) == sum(p.data().size for p in params if p.grad_req != "null")
    before = {p.name: p.data().asnumpy() for p in params}
    chosen = {id(v.native) for v in pm.init(up.init.XavierUniform(), **README, seed=0).collect(**README).values()}
    assert {id(p) for p in params if not np.array_equal(before[p.name], p.data().asnumpy())} == chosen
    dense = {id(b.weight) for b in _blocks(model) if isinstance(b, (mx.gluon.nn.Dense, mx.gluon.nn.Conv2D))}
    scales = {id(b.gamma) for b in _blocks(model) if isinstance(b, mx.gluon.nn.BatchNorm)}
    assert dense <= chosen and not chosen & scales
    assert np.isfinite(model(x).asnumpy()).all()
    pm.save(tmp_path / "m.safetensors")
    fresh = build()
    up.wrap(fresh).materialize(x).load(tmp_path / "m.safetensors")
    for a, b in zip(params, fresh.collect_params().values()):
        assert np.array_equal(a.data().asnumpy(), b.data().asnumpy()), a.name
    grads = pm.grads(x)
    with mx.autograd.record(train_mode=False):
        total = model(x).sum()
    total.backward()
    views = {id(p.native): name for name, p in pm.items()}
    for p in params:
        if p.grad_req != "null":
            np.testing.assert_allclose(grads[views[id(p)]], p.grad().asnumpy(), rtol=1e-4, atol=1e-6, err_msg=p.name)


def _blocks(block: Any) -> list[Any]:
    return [block, *(b for child in block._children.values() for b in _blocks(child))]
