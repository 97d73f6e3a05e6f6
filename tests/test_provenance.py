"""pm.provenance() (issue 17 item 5): the initializer and seed that produced each current value, claimed only while the
value is unchanged, judged by each framework's own change token; recorded by pm.save, shown by inspect."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

import unified_params as up

NORMAL = {"initializer": "Normal(mean=0.0, std=0.1)", "seed": 3}


def _claimed(pm: up.ParamAPI) -> dict[str, Any]:
    return {n: o for n, o in pm.provenance().items() if o is not None}


def test_torch_claims_until_the_tensor_changes() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    pm = up.wrap(net).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    assert pm.provenance() == {"0.weight": NORMAL, "0.bias": None, "2.weight": NORMAL, "2.bias": None}
    assert up.wrap(net).provenance() == pm.provenance(), "every wrap of the model sees it"
    assert pm.layer(2).provenance() == {"weight": NORMAL, "bias": None}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    assert _claimed(pm) == {}
    pm.init(up.init.Zeros(), kind="bias", seed=1)
    pm["0.bias"].set(np.ones(3, np.float32))
    assert _claimed(pm) == {"2.bias": {"initializer": "Zeros(value=0.0)", "seed": 1}}
    net[2].bias = nn.Parameter(torch.zeros(2))
    assert _claimed(pm) == {}


def test_loads_and_transfers_write_no_initializer(tmp_path: Path) -> None:
    source = nn.Sequential(nn.Linear(4, 3))
    up.wrap(source).save(tmp_path / "m.safetensors")
    for write in (lambda pm: pm.load(tmp_path / "m.safetensors"), lambda pm: pm.load_state_dict(source.state_dict()),
                  lambda pm: up.transfer(source, pm)):
        pm = up.wrap(nn.Sequential(nn.Linear(4, 3))).init(up.init.Ones(), seed=0)
        assert len(_claimed(pm)) == 2
        write(pm)
        assert _claimed(pm) == {}


def test_recorded_init_claims_when_the_first_forward_runs_it() -> None:
    net = nn.Sequential(nn.LazyLinear(3))
    pm = up.wrap(net).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    assert pm.provenance() == {"0.weight": None, "0.bias": None}
    net(torch.ones(2, 5))
    assert pm.provenance() == {"0.weight": NORMAL, "0.bias": None}


def test_save_records_it_per_file_and_per_shard(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 2))
    pm = up.wrap(net).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    pm.save(tmp_path / "shards", max_shard_size=5000)
    found = {}
    for file in sorted((tmp_path / "shards").glob("*.safetensors")):
        with safe_open(str(file), framework="np") as f:
            found.update(json.loads(f.metadata().get("provenance", "{}")))
    assert found == {"0.weight": NORMAL, "2.weight": NORMAL}


def test_jax_backends_claim_until_the_array_is_replaced() -> None:
    import jax.numpy as jnp
    from flax import nnx

    from unified_params.backends import equinox_examples, flax_examples, nnx_examples

    model = nnx_examples.mlp().model
    pm = up.wrap(model).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    assert _claimed(pm) == {"0.weight": NORMAL, "2.weight": NORMAL}
    model.layers[0].kernel.value = jnp.zeros((4, 8))
    assert _claimed(pm) == {"2.weight": NORMAL}
    assert isinstance(model.layers[0].kernel, nnx.Param)
    for built in (flax_examples.mlp(), equinox_examples.mlp()):
        pm = up.wrap(built.model, built.variables).init(up.init.Normal(std=0.1), kind="weight", seed=3)
        assert _claimed(pm) == {"0.weight": NORMAL, "2.weight": NORMAL}, pm.backend
        pm["0.weight"].set(np.zeros(pm["0.weight"].shape, np.float32))
        assert _claimed(pm) == {"2.weight": NORMAL}, pm.backend


def test_mxnet_has_no_change_token_so_nothing_is_claimed() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.Dense(3, in_units=4)
    net.initialize()
    pm = up.wrap(net).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    assert pm.provenance() == {"weight": None, "bias": None}


def test_a_save_across_processes_records_provenance_only_when_every_process_knows_the_same() -> None:
    """collective.save records process 0's provenance when every process reports the same (the gloo and
    jax.distributed runs check the files), and none when one process differs: a process that wrote a value another
    way must not be covered by process 0's claim."""
    from unified_params import collective

    class Group:
        """Process `rank` of a group whose process 0 saw `first` and whose other processes agree or not."""

        def __init__(self, rank: int, first: dict, others_agree: bool) -> None:
            self.rank, self.size, self.first, self.others_agree = rank, 2, first, others_agree

        def broadcast(self, value: object) -> object:
            return self.first

        def all_ok(self, ok: bool) -> bool:
            return ok and self.others_agree

    seen = {"0.weight": {"initializer": "Normal(mean=0.0, std=0.01)", "seed": 3}}
    assert collective.agreed(Group(0, seen, True), seen) == seen
    assert collective.agreed(Group(1, seen, True), seen) == seen
    assert collective.agreed(Group(0, seen, False), seen) == {}
    assert collective.agreed(Group(1, seen, True), {**seen, "0.bias": {"initializer": "Zeros()", "seed": 1}}) == {}
