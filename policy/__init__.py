"""The order-saga policy pack (see `policy/rules.py`; `policy/__main__.py` serves it)."""
