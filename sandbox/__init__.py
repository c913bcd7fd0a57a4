"""The embedded AWS: run the order-saga program offline.

`python -m sandbox` is its command line. Today it deploys the program under
recording Pulumi mocks (`up`) and mirrors `aws events test-event-pattern`.
"""
