"""The `inferq` command: the worker, the producer commands, the demo and the benchmarks, for people to type.

Nothing under engines/, tasks/, api_client/ or worker/ imports this package (tests/test_layout.py).
"""
