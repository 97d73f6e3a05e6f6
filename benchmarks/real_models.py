"""Real architectures against their frameworks' own calls: `python benchmarks/real_models.py [gpt2] [resnet50] ...`.

GPT-2 small (transformers GPT2Config() defaults: 124 M parameters, randomly initialized, no download) on torch and
Keras ResNet50 (weights=None, 25.6 M parameters): wrap + first names(), init of every weight, save and load, each as
a ratio to the native call measured in the same process, sampled alternately (benchmarks/measure.py); and
ResNet-50 moved from transformers (torch) to keras-hub (Keras) by `up.transfer` with a rename list. Each model
runs in a process of its own (`--model NAME` runs one and prints its rows as JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Stats, alternate, compare  # noqa: E402

import unified_params as up  # noqa: E402

STD = 0.02


def _rows(ours_native: dict[str, tuple[Callable[[], Any], Callable[[], Any], str]], repeat: int,
          fast: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per operation: ours and native medians (fast calls looped, heavy calls run alternately)."""
    rows = []
    for op, (ours, native, label) in ours_native.items():
        if op in fast:
            a, b = compare(ours, native, max(repeat, 5))
        else:
            runs = alternate({"native": native, "ours": ours}, repeat)
            a, b = Stats.of(runs["ours"].wall), Stats.of(runs["native"].wall)
        rows.append({"op": op, "ours": a.median, "native": b.median, "label": label})
    return rows


def gpt2(repeat: int, folder: str) -> list[dict[str, Any]]:
    """transformers GPT-2 small on torch."""
    import torch
    from safetensors.torch import load_model, save_model
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())
    pm = up.wrap(model)
    ours_file, native_file = os.path.join(folder, "ours.safetensors"), os.path.join(folder, "native.safetensors")

    def native_init() -> None:
        with torch.no_grad():
            for p in model.parameters():
                torch.nn.init.normal_(p, 0.0, STD)

    pm.save(ours_file)
    save_model(model, native_file)
    return _rows({
        "wrap + first names()": (lambda: up.wrap(model).names(), lambda: [n for n, _ in model.named_parameters()],
                                 "[n for n, _ in model.named_parameters()]"),
        "init(Normal) of every parameter": (lambda: pm.init(up.init.Normal(std=STD), seed=0), native_init,
                                            "nn.init.normal_ per parameter"),
        "save": (lambda: pm.save(ours_file), lambda: save_model(model, native_file), "safetensors.torch.save_model"),
        "load": (lambda: pm.load(ours_file), lambda: load_model(model, native_file), "safetensors.torch.load_model"),
    }, repeat, fast=("wrap + first names()",))


def resnet50(repeat: int, folder: str) -> list[dict[str, Any]]:
    """Keras ResNet50 without weights."""
    import keras

    model = keras.applications.ResNet50(weights=None)
    pm = up.wrap(model)
    ours_file, native_file = os.path.join(folder, "ours.safetensors"), os.path.join(folder, "native.weights.h5")

    def native_init() -> None:
        init = keras.initializers.RandomNormal(stddev=STD, seed=0)
        for v in model.weights:
            v.assign(init(v.shape, v.dtype))

    pm.save(ours_file)
    model.save_weights(native_file)
    return _rows({
        "wrap + first names()": (lambda: up.wrap(model).names(), lambda: [v.path for v in model.weights],
                                 "[v.path for v in model.weights]"),
        "init(Normal) of every weight": (lambda: pm.init(up.init.Normal(std=STD), seed=0), native_init,
                                         "v.assign(RandomNormal(seed)(shape)) per weight"),
        "save": (lambda: pm.save(ours_file), lambda: model.save_weights(native_file), "model.save_weights (.h5)"),
        "load": (lambda: pm.load(ours_file), lambda: model.load_weights(native_file), "model.load_weights (.h5)"),
    }, repeat, fast=("wrap + first names()",))


RESNET_RENAME = [(r"embedder\.embedder\.convolution\.(.*)", r"conv1_conv.\1"),
                 (r"embedder\.embedder\.normalization\.(.*)", r"conv1_bn.\1"),
                 (r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.(.*)", r"stack\1_block\2_0_conv.\3"),
                 (r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.(.*)", r"stack\1_block\2_0_bn.\3"),
                 *[(rf"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.{k}\.{part}\.(.*)",
                    rf"stack\1_block\2_{k + 1}_{to}.\3")
                   for k in range(3) for part, to in (("convolution", "conv"), ("normalization", "bn"))]]
"""transformers ResNet names -> keras-hub ResNetBackbone names (tests/test_resnet_keras_pair.py checks the pairing)."""


def resnet50_pair(repeat: int, folder: str) -> list[dict[str, Any]]:
    """transformers ResNet-50 (torch) -> keras-hub ResNet-50 (Keras): the same architecture in two frameworks."""
    import keras_hub
    from transformers import ResNetConfig, ResNetModel

    hf = ResNetModel(ResNetConfig()).eval()
    hub = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    hub_pm = up.wrap(hub)
    state = hf.state_dict()
    pairs = [(state[p.source], hub_pm[p.target].native) for p in up.match(hf, hub, rename=RESNET_RENAME).pairs]

    def naive() -> None:
        for tensor, variable in pairs:
            value = tensor.detach().numpy()
            variable.assign(value.transpose(2, 3, 1, 0) if value.ndim == 4 else value)

    return _rows({
        "transfer transformers -> keras-hub (rename list)": (
            lambda: up.transfer(hf, hub, rename=RESNET_RENAME), naive,
            "numpy views of torch -> transpose conv kernels -> v.assign (mapping prepared beforehand)"),
    }, repeat, fast=())


MODELS = {"gpt2": (gpt2, "torch: transformers GPT-2 small (124 M parameters)"),
          "resnet50": (resnet50, "keras: ResNet50, weights=None (25.6 M parameters)"),
          "resnet50_pair": (resnet50_pair, "torch -> keras: transformers ResNet-50 -> keras-hub ResNet-50 (25.6 M)")}


def _time(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def main() -> None:
    """Run each model in its own process and print a markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", choices=sorted(MODELS), help="run one model here and print its rows as JSON")
    args = parser.parse_args()
    if args.model:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(MODELS[args.model][0](args.repeat, folder)))
        return
    print("| model | operation | unified_params | native | native call | ratio |\n|---|---|---|---|---|---|")
    for name in args.models:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
        out = subprocess.run([sys.executable, __file__, "--model", name, "--repeat", str(args.repeat)], env=env,
                             capture_output=True, text=True, check=True).stdout
        for r in json.loads(out.strip().splitlines()[-1]):
            print(f"| {MODELS[name][1]} | {r['op']} | {_time(r['ours'])} | {_time(r['native'])} | `{r['label']}` | "
                  f"{r['ours'] / r['native']:.2f}× |")


if __name__ == "__main__":
    main()
