"""The conformance suite (E1-E13, deferred, errors, state) on every backend; make test requires every backend to run."""
from unified_params.conformance.test_builders import *  # noqa: F403
from unified_params.conformance.test_deferred import *  # noqa: F403
from unified_params.conformance.test_deferred_robustness import *  # noqa: F403
from unified_params.conformance.test_errors import *  # noqa: F403
from unified_params.conformance.test_examples import *  # noqa: F403
from unified_params.conformance.test_layers import *  # noqa: F403
from unified_params.conformance.test_live import *  # noqa: F403
from unified_params.conformance.test_names import *  # noqa: F403
from unified_params.conformance.test_sharded import *  # noqa: F403
from unified_params.conformance.test_side_effects import *  # noqa: F403
