"""snakefleet's Python side: the worker runtime that the C supervisors spawn
(`python -m snakefleet.worker`), its program kinds, and the wire codec.

Kept empty on purpose: every worker start imports this package, so nothing
here may cost import time.
"""

__version__ = "0.1.0"
