"""Native differences between the frameworks that unified_params documents (docs/cross-framework.md)."""
from __future__ import annotations

import numpy as np
import torch


def _mxnet():  # noqa: ANN202
    from unified_params.backends.mxnet_import import import_mxnet

    return import_mxnet()


def test_mxnet_maxpool_backward_in_predict_mode_differs_from_torch() -> None:
    """MXNet 1.9.1 (oneDNN) routes max-pooling gradients wrongly when recording in predict mode; train mode agrees."""
    mx = _mxnet()
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 6)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(2, 4, 3, 3)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(xt, 2) * torch.from_numpy(w)).sum().backward()
    diffs = {}
    for train_mode in (False, True):
        xm = mx.nd.array(x)
        xm.attach_grad()
        with mx.autograd.record(train_mode=train_mode):
            y = (mx.nd.Pooling(xm, kernel=(2, 2), stride=(2, 2), pool_type="max") * mx.nd.array(w)).sum()
        y.backward()
        diffs[train_mode] = float(np.abs(xm.grad.asnumpy() - xt.grad.numpy()).max())
    assert diffs[True] == 0.0 and diffs[False] > 0.1


def test_mxnet_batchnorm_input_grad_in_predict_mode_needs_global_stats() -> None:
    """Gluon BatchNorm in predict mode differentiates as if batch statistics were used, unless use_global_stats=True."""
    mx = _mxnet()
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 3)).astype(np.float32)
    tb = torch.nn.BatchNorm2d(4).eval()
    xt = torch.tensor(x, requires_grad=True)
    tb(xt).pow(2).sum().backward()
    diffs = {}
    for ugs in (False, True):
        bn = mx.gluon.nn.BatchNorm(in_channels=4, epsilon=1e-5, use_global_stats=ugs)
        bn.initialize()
        xm = mx.nd.array(x)
        xm.attach_grad()
        with mx.autograd.record(train_mode=False):
            y = (bn(xm) ** 2).sum()
        y.backward()
        diffs[ugs] = float(np.abs(xm.grad.asnumpy() - xt.grad.numpy()).max())
    assert diffs[True] < 1e-5 and diffs[False] > 0.1
