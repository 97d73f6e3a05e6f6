"""The documents' examples E1-E13: what each backend's examples module must build, and the shared inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EXAMPLES: dict[str, str] = {
    "E1": "MLP Dense(4->8), ReLU, Dense(8->1) on X (2, 4): output shape (2, 1)",
    "E2": "parameters of one layer: pm.layer(2) has weight (1, 8) and bias (1,), float32",
    "E3": "one parameter: p.native is the framework's parameter object, p.grad is None before backward",
    "E4": "all parameters: 0.weight 0.bias 2.weight 2.bias with shapes (8,4) (8,) (1,8) (1,)",
    "E5": "access by name: pm['2.bias'] equals the native value",
    "E6": "nested blocks rgnet: 18 parameters, pm.layer(0, 1, 0)['bias'] is rgnet[0][1][0].bias",
    "E7": "built-in init: Normal/zeros, constant 1, Xavier on layer 0 and 42 on layer 2; same seed, same bits",
    "E8": "custom init U(-10, 10) zeroed where abs < 5; then w += 1 and w[0, 0] = 42 seen natively",
    "E9": "collect by regex '.*weight': exactly the weights, in order",
    "E10": "tied layer: pm.tied(), writes seen through both names, summed grads, counted once",
    "E11": "deferred init: shapes (256, None) before data, recorded custom init runs once per weight after",
    "E12": "avoiding deferral: input sizes given, initialized at once; an explicit init overwrites",
    "E13": "exercises: mismatched input size, a different input size after materializing: clear error, nothing changed",
}

LAYERS: dict[str, str] = {
    "conv": "grouped Conv2d(4, 6, (3, 2), groups=2)",
    "depthwise_conv": "depthwise Conv2d(4, 8, (3, 2), groups=4) (Keras DepthwiseConv2D, depth_multiplier 2)",
    "conv_transpose": "ConvTranspose2d(4, 6, (3, 2), stride=2)",
    "group_norm": "GroupNorm(2, 4, eps=1e-5)",
    "instance_norm": "InstanceNorm2d(4, affine=True, eps=1e-5)",
    "prelu": "PReLU() (one shared slope)",
    "attention": "MultiheadAttention(8, 2) self-attention, batch-first (packed in_proj_weight, biases)",
    "attention_no_bias": "MultiheadAttention(8, 2, bias=False) self-attention",
    "attention_kdim": "MultiheadAttention(8, 2, kdim=6, vdim=6): keys and values are the input's first 6 features",
    "lstm": "LSTM(3 -> 4), one layer, batch-first, all steps' outputs",
    "gru": "GRU(3 -> 4) (Keras reset_after=True), one layer, batch-first",
    "rnn": "RNN(3 -> 4), tanh (Keras SimpleRNN, Flax SimpleCell), one layer, batch-first",
    "bidirectional_lstm": "LSTM(3 -> 4, bidirectional=True): torch's _reverse tensors (Keras/Flax Bidirectional)",
    "stacked_gru": "GRU(3 -> 4, num_layers=2): torch's _l1 tensors, where one native layer stacks",
}
"""The layers section: each backend's `*_layers` module builds these, as the only layer of a Sequential (attention
and recurrent layers: as attribute `layer` of a tiny model that calls it on the sequence input)."""
RECURRENT = ("lstm", "gru", "rnn", "bidirectional_lstm", "stacked_gru")
"""The layers taking a batch-first sequence of 3 features (the same layout on every framework)."""

EMBED, HEADS, KDIM, HIDDEN = 8, 2, 6, 16
"""Attention rows and the Transformer encoder block: embedding size, heads, key/value size, MLP width."""

FEATURES: dict[str, str] = {
    **EXAMPLES,
    "builders": "every examples builder (mlp ... eager, zoo) builds, wraps, has the documented names, runs natively",
    "deferred: failed materialize": "a materialize that fails puts the model back as it was and keeps the records",
    "deferred: tied records": "an init recorded through a tied alias runs once, at the first forward, and never again",
    "deferred: the later call wins": "the framework's own init after pm.init wins; materialize replays no old record",
    "deferred: materialize() without inputs": "returns pm when every shape is known, else DeferredInitializationError",
    "deferred: shape or storage": "pending() lists unknown shapes; pending('storage') known shapes without storage",
    "deferred: structure not known": "a linen @compact model before init: not initialized; init records the selection",
    "deferred: inputs": "one tuple input, float64 inputs, pm.forward on a deferred model, a batch of 0",
    "deferred: load": "pm.load and load_state_dict into a deferred model take the shapes from the state",
    "errors": "bad input: the named error, a message that says what to do, the model unchanged",
    "state": "state_dict / load_state_dict / save / load / transfer / compare on one backend",
    "live model": "a model changed after wrap (layers replaced, added, removed; weight reassigned; frozen; cast)",
    "cross: same seed, same bits": "the same init and seed give bitwise-equal state on both backends of each pair",
    "cross: outputs and gradients": "outputs (rtol 1e-5) and gradients (rtol 1e-4) agree for each pair",
    "cross: transfer": "up.transfer reproduces every value natively and the outputs, for each ordered pair",
    "cross: checkpoints": "a file saved on one backend loads bitwise on the other, for each ordered pair",
    "names": "eight common structures written idiomatically get the naming rule's canonical names",
    "names: transfer": "each of the eight structures moves between every pair with the same outputs",
    "architectures: transformer encoder block": "attention + LayerNorm + ReLU MLP with residuals in the framework's "
    "own idiom: same names, same-seed bits, torch's outputs",
    **{f"layers: {t}": f"{d}: from torch, canonical names and shapes, same-seed bits, transfer and checkpoint "
       "give torch's outputs and gradients" for t, d in LAYERS.items()},
}

REQUIRED_BUILDERS = ("mlp", "nested", "tied", "deferred", "eager", "deferred_pair", "deferred_tied")
REQUIRED_ORACLES = ("native_object", "native_value", "native_names", "native_forward", "native_grads",
                    "native_initialized")

MUTATIONS: dict[str, str] = {
    "replace_layer": "replace_layer(model): layer 2 of mlp() becomes a new Dense(8 -> 3), initialized natively",
    "append_layer": "append_layer(model): a new Dense(1 -> 2) appended to mlp() as layer 3, initialized natively",
    "delete_layer": "delete_layer(model): layer 2 (the last) of mlp() removed",
    "reassign_weight": "reassign_weight(model): layer 0's weight becomes a new native parameter, all 0.5",
    "set_trainable": "set_trainable(model, position, flag): freeze or unfreeze one layer of mlp() the framework's way",
    "cast": "cast(model) -> dtype name: every parameter of mlp() cast the framework's way (float64 where it can)",
}
"""Changes made to a wrapped model with the framework's own API; an examples module defines each function or says
in UNSUPPORTED_MUTATIONS why its framework cannot make that change."""


@dataclass
class Built:
    """A model built by a backend's examples module: the native model and, for linen, its variables."""

    model: Any
    variables: Any = None


def mlp_input() -> np.ndarray:
    """X of shape (2, 4) for E1-E10 and E13."""
    return np.random.default_rng(1).uniform(size=(2, 4)).astype(np.float32)


def deferred_input(width: int = 20) -> np.ndarray:
    """X of shape (2, width) for the deferred examples E11-E13."""
    return np.random.default_rng(2).uniform(size=(2, width)).astype(np.float32)


def zoo_image() -> np.ndarray:
    """The zoo model's image, channels-last (2, 8, 8, 3); channels-first frameworks transpose it to (2, 3, 8, 8)."""
    return np.random.default_rng(3).uniform(-1, 1, size=(2, 8, 8, 3)).astype(np.float32)


def zoo_tokens() -> np.ndarray:
    """The zoo model's token ids (2, 5), int32."""
    return np.random.default_rng(4).integers(0, 10, size=(2, 5)).astype(np.int32)


def layer_input(layer_type: str = "conv") -> np.ndarray:
    """The layers section's input: an image, channels-first (2, 4, 9, 8), which channels-last frameworks move the axis
    of; for attention a batch-first sequence (2, 5, EMBED), for recurrent layers sequence_input()."""
    if layer_type.startswith("attention"):
        return np.random.default_rng(7).normal(size=(2, 5, EMBED)).astype(np.float32)
    if layer_type in RECURRENT:
        return sequence_input()
    return np.random.default_rng(6).normal(size=(2, 4, 9, 8)).astype(np.float32)


def sequence_input() -> np.ndarray:
    """The layers section's sequence, batch-first (2, 5, 3) on every framework (the recurrent rows)."""
    return np.random.default_rng(7).normal(size=(2, 5, 3)).astype(np.float32)
