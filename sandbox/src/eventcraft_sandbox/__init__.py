"""The embedded AWS: run a Pulumi Python program offline.

`python -m eventcraft_sandbox` is its command line: `up` deploys a program's stack into an
in-process moto, `test-event-pattern` mirrors `aws events test-event-pattern`.
`eventcraft_sandbox.session.SandboxSession` runs a deployed stack (Lambda runtime, delivery,
virtual clock) for tests and demos.
"""
