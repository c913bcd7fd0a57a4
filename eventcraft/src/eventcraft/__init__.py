"""eventcraft: the generic library the handlers share (contracts, envelopes, idempotency, publisher,
outbox, batch, event store, DLQ tools, settings, dynamodb, durable sagas...). Import the module
you need, e.g. `from eventcraft import publisher`: this package imports nothing itself, so a
handler loads only what it uses (cold start)."""
