"""State dicts, safetensors checkpoints, transfer across frameworks, and comparison."""
from __future__ import annotations

import json
import os
import stat
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import errors
from .dtypes import can_cast, overflowed, resolve

if TYPE_CHECKING:
    from .api import ParamAPI

FORMAT = "unified_params"
FORMAT_VERSION = "1"


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        try:
            return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value.numpy())
        except Exception:
            pass
    return np.asarray(value)


def load_state(pm: ParamAPI, state: dict[str, Any], strict: bool = True, cast: bool = False) -> None:
    """Write state into pm after checking every name, shape and dtype; on any misfit write nothing.

    Values of the right dtype go to the adapter as given (views, any strides), so the writes copy one tensor at a time.
    """
    entries = {pm._rel(e.name): e for e in pm._unique()}
    aliases = {pm._rel(e.name): pm._rel(e.first) for e in pm._entries() if e.name != e.first}
    given: dict[str, Any] = {}
    unexpected, tied = [], []
    for name, value in state.items():
        target = name if name in entries else aliases.get(name)
        if target is None or target not in entries:
            unexpected.append(name)
        elif target not in given or name == target:
            given[target] = value
        if target is not None and target != name:
            tied.append((name, target))
    for name, target in tied:
        if not np.array_equal(_as_array(state[name]), _as_array(given[target])):
            unexpected.append(f"{name} (tied to {target} in this model, but the state holds another value)")
    missing = [n for n in entries if n not in given]
    pending = [n for n in given if not entries[n].slot.initialized]
    if pending:
        raise errors.DeferredInitializationError(
            f"cannot load {', '.join(pending)}: shape not known yet; call pm.materialize(example_input) first")
    mismatched, dtypes, overflow, values = [], [], [], []
    for name, value in given.items():
        slot = entries[name].slot
        array = _as_array(value)
        if array.shape != tuple(slot.shape):
            mismatched.append(f"{name}: checkpoint {array.shape} vs model {tuple(slot.shape)}")
            continue
        target = resolve(slot.dtype)
        if array.dtype != target and not (cast and can_cast(array.dtype, target)):
            dtypes.append(f"{name}: checkpoint {array.dtype} vs model {target}")
            continue
        if array.dtype == target:
            values.append((slot, array))
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(target)
        if overflowed(array, converted):
            overflow.append(f"{name}: {overflowed(array, converted)} value(s) of {array.dtype} overflow {target}")
            continue
        values.append((slot, converted))
    problems = []
    if strict and missing:
        problems.append(f"missing: {', '.join(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {'; '.join(mismatched)}")
    if dtypes:
        problems.append(f"dtype mismatch: {'; '.join(dtypes)} (pass cast=True to convert)")
    if overflow:
        problems.append(f"cast would overflow: {'; '.join(overflow)}")
    if problems:
        text = "state does not fit the model, nothing was written; " + " | ".join(problems)
        if mismatched:
            raise errors.ShapeMismatchError(text)
        if dtypes or overflow:
            raise errors.DtypeMismatchError(text)
        raise errors.ParameterNotFoundError(text)
    pm._model.adapter.write_many(values)


def save(pm: ParamAPI, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write pm's state to path as safetensors: a temporary file in the same folder, then renamed."""
    from safetensors.numpy import save_file

    state = {k: np.ascontiguousarray(v) for k, v in pm.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "backend": pm.backend, "layout": "canonical",
            "tied": json.dumps(pm.tied()), "order": json.dumps(list(state)),
            "crc32": json.dumps({k: _crc32(v) for k, v in state.items()})}
    meta.update(metadata or {})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order), stored per tensor so that load() detects corrupt data."""
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _file_mode(path: str) -> int:
    """The permissions a checkpoint gets: those of the file it replaces, else 0o666 minus the umask (as open() gives)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0o077)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_folder(folder: str) -> None:
    """Make the rename durable where the platform allows syncing a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file; CheckpointError if it is not a sound one."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise errors.CheckpointError(f"no checkpoint file at {path!r}")
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise errors.CheckpointError(f"{path!r} is not a readable safetensors checkpoint (truncated or corrupt?): {e}") from e
    return tensors, metadata


def verify(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Raise CheckpointError unless the file's layout, format version and checksums are ones load() can trust."""
    where = repr(os.fspath(path))
    if metadata.get("layout", "canonical") != "canonical":
        raise errors.CheckpointError(f"{where} holds {metadata['layout']!r} layout, not canonical: it was not written by pm.save()")
    version = metadata.get("format_version", FORMAT_VERSION) if metadata.get("format") == FORMAT else FORMAT_VERSION
    if not version.isdigit() or int(version) > int(FORMAT_VERSION):
        raise errors.CheckpointError(f"{where} has format version {version!r}; this unified_params reads up to {FORMAT_VERSION}: upgrade it")
    if "crc32" not in metadata:
        return
    try:
        sums = json.loads(metadata["crc32"])
        bad = [k for k, v in sums.items() if k not in tensors or _crc32(tensors[k]) != int(v)]
    except (ValueError, TypeError, AttributeError) as e:
        raise errors.CheckpointError(f"{where} has an unreadable checksum table: {e}") from e
    if bad:
        raise errors.CheckpointError(f"{where} is corrupt: the data of {', '.join(bad)} does not match its checksum")


def load(pm: ParamAPI, path: str | os.PathLike, strict: bool = True, cast: bool = False) -> None:
    """Load a checkpoint written by save() (or any safetensors file with canonical names)."""
    tensors, metadata = read(path)
    verify(path, tensors, metadata)
    try:
        load_state(pm, tensors, strict=strict, cast=cast)
    except errors.UnifiedParamsError as e:
        source = metadata.get("backend", "unknown")
        raise type(e)(f"checkpoint {os.fspath(path)!r} (saved from {source}): {e}") from e


def transfer(src: Any, dst: Any, strict: bool = True) -> ParamAPI:
    """Copy every parameter of src into dst by canonical name (across frameworks); returns dst's view."""
    from .api import ParamAPI
    from .wrapping import wrap

    src_pm = src if isinstance(src, ParamAPI) else wrap(src)
    dst_pm = dst if isinstance(dst, ParamAPI) else wrap(dst)
    view = src_pm._model.adapter.view
    dst_pm.load_state_dict({src_pm._rel(e.name): view(e.slot) for e in src_pm._ready_unique()}, strict=strict)
    return dst_pm


@dataclass
class Comparison:
    """The result of compare(): per name the largest absolute difference, and whether all are close."""

    equal: bool
    max_abs: dict[str, float] = field(default_factory=dict)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.equal

    def __str__(self) -> str:
        worst = max(self.max_abs.values(), default=0.0)
        parts = [f"{'equal' if self.equal else 'different'}: {len(self.max_abs)} compared, max abs diff {worst:.3g}"]
        for label, names in (("only in a", self.only_in_a), ("only in b", self.only_in_b), ("shape mismatch", self.shape_mismatch)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts)


def compare(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> Comparison:
    """Compare two models (or views, or state dicts) by canonical name."""
    from .api import ParamAPI
    from .wrapping import wrap

    def state(x: Any) -> dict[str, np.ndarray]:
        if isinstance(x, dict):
            return {k: _as_array(v) for k, v in x.items()}
        return (x if isinstance(x, ParamAPI) else wrap(x)).state_dict()

    sa, sb = state(a), state(b)
    result = Comparison(True, only_in_a=[n for n in sa if n not in sb], only_in_b=[n for n in sb if n not in sa])
    for name in (n for n in sa if n in sb):
        x, y = sa[name], sb[name]
        if x.shape != y.shape:
            result.shape_mismatch.append(f"{name} {x.shape} vs {y.shape}")
            continue
        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
        result.max_abs[name] = float(diff.max()) if diff.size else 0.0
        if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            result.equal = False
    if result.only_in_a or result.only_in_b or result.shape_mismatch:
        result.equal = False
    return result
