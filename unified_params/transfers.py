"""Copying parameters between models, across frameworks, by canonical name."""
from __future__ import annotations

from typing import Any

from .api import ParamAPI
from .wrapping import wrap


def transfer(src: Any, dst: Any, strict: bool = True) -> ParamAPI:
    """Copy every parameter of src into dst by canonical name (across frameworks); returns dst's view.

    The source is read through zero-copy views where its framework allows; the destination checks everything first.
    """
    src_pm, dst_pm = wrap(src), wrap(dst)
    return dst_pm.load_state_dict(src_pm.state_dict(copy=False), strict=strict)
