"""The conformance suite: the documents' examples E1-E13 asserted on every backend.

Run it as `unified-params conformance`, `pytest --pyargs unified_params.conformance --backend NAME`,
or from the project's tests/.
"""
