"""One module per CLI command; each defines ``register(subparsers)``.

``executor_options`` is no command: the options of the commands that train many runs.
"""
