"""The numpy-2 shim: MXNet 1.9.1 imports and works, and numpy keeps none of the names lent to it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from unified_params.backends import mxnet_import

LENT = sorted(mxnet_import._removed_names())

FRESH = """
import json, sys
import numpy as np
report = {"numpy": np.__version__, "before": [n for n in NAMES if n in np.__dict__]}
try:
    import mxnet
    report["plain_import"] = "ok"
except Exception as e:
    report["plain_import"] = type(e).__name__ + ": " + str(e).splitlines()[0]
for m in [m for m in sys.modules if m == "mxnet" or m.startswith("mxnet.")]:
    del sys.modules[m]
import unified_params.backends.mxnet as adapter
report["adapter_imported_mxnet"] = "mxnet" in sys.modules
from unified_params.backends.mxnet_import import import_mxnet
mx = import_mxnet()
report["after"] = [n for n in NAMES if n in np.__dict__]
report["version"] = mx.__version__
from mxnet import nd
from mxnet.gluon import nn
net = nn.Dense(3, in_units=2)
net.initialize(mx.init.Constant(1))
report["forward"] = net(nd.ones((1, 2))).asnumpy().tolist()
report["fallback"] = [bool(mx.numpy.fallback.alltrue(np.ones(3))), float(mx.numpy.utils.NINF)]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def fresh() -> dict:
    """One fresh interpreter: numpy before, a plain `import mxnet`, then the shim."""
    code = FRESH.replace("NAMES", repr(LENT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plain_import_fails_on_numpy_2(fresh: dict) -> None:
    if int(fresh["numpy"].split(".")[0]) < 2:
        pytest.skip("numpy 1.x still has the names")
    assert fresh["before"] == []
    assert fresh["plain_import"] != "ok"


def test_shim_imports_mxnet_and_numpy_keeps_none_of_the_names(fresh: dict) -> None:
    assert fresh["version"] == "1.9.1"
    assert fresh["after"] == fresh["before"]
    assert fresh["forward"] == [[2.0, 2.0, 2.0]]
    assert fresh["fallback"] == [True, float("-inf")]


def test_adapter_module_imports_without_mxnet(fresh: dict) -> None:
    assert fresh["adapter_imported_mxnet"] is False


def test_names_are_removed_even_when_the_import_fails() -> None:
    before = set(np.__dict__)
    with pytest.raises(ZeroDivisionError), mxnet_import.lend_removed_numpy_names() as lent:
        if int(np.__version__.split(".")[0]) >= 2:
            assert "PZERO" in lent and np.PZERO == 0.0 and np.alltrue([True])
        1 / 0
    assert set(np.__dict__) == before


def test_shim_returns_the_loaded_module() -> None:
    mx = mxnet_import.import_mxnet()
    assert mxnet_import.import_mxnet() is mx is sys.modules["mxnet"]
    assert [n for n in LENT if n in np.__dict__] == []
