"""summary(): no native-name column when it repeats the name, a layer column, at most 120 columns (issue 16)."""
from __future__ import annotations

import keras
from torch import nn

import unified_params as up


def test_torch_summary_has_no_repeated_native_column_and_names_the_layer() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    table = up.wrap(net).summary()
    header = table.splitlines()[0].split()
    assert "native" not in header and "layer" in header
    rows = {line.split()[0]: line for line in table.splitlines()[2:-1]}
    assert set(rows) == set(net.state_dict())
    for name, module in (("0.weight", net[0]), ("1.running_var", net[1])):
        assert rows[name].split()[1] in (type(module).__name__, "conv", "batch_norm")


def test_long_native_names_are_shortened_in_the_middle_to_fit_120_columns() -> None:
    inputs = keras.Input((6, 6, 3))
    name = "stem_" + "very_" * 30 + "long_conv"
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name=name)(inputs))
    table = up.wrap(model).summary()
    assert max(len(line) for line in table.splitlines()) <= 120
    kernel = model.get_layer(name).kernel.path
    line = next(line for line in table.splitlines() if "/kernel" in line)
    assert kernel not in line and line.startswith(up.wrap(model)[kernel].name[:10]) and "…" in line
