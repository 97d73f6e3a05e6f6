"""Cross-framework checks on every ordered backend pair (issue 6): bits, outputs, gradients, transfer, checkpoints."""
from unified_params.conformance.test_cross import *  # noqa: F403
