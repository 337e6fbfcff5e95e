"""JSON from the outside world: nesting too deep for the parser is malformed input, not a bug.

Python's decoder raises RecursionError on a document nested some thousand levels deep (100,000
``[`` fit in a 4 MiB manifest); every reader here already treats a ValueError as "not JSON".
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads``, raising ValueError for a document nested too deep to parse."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None
