"""`python -m ops ...`: see `ops.cli`."""

from __future__ import annotations

from ops.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
