"""The order saga's application layer: the use cases and adapters the handlers call.

- `store`: the orders table as the saga's store (load, prepare, commit, record, retry);
- `sfn_state`: reading a Step Functions saga execution's state (order, failed step, error);
- `inventory_step`, `payment_step`, `shipping_step`: each step's use case and its
  compensation (reserve / release, pay / refund, ship);
- `guards`: what a step or compensation checks in the other steps' tables before it
  acts (shipping needs a charge and a reservation; nothing shipped is compensated);
- `compensation`: running the compensations (late ones, Step Functions tasks);
- `placing`: placing an order once per client request;
- `customers`: the customers table's reader.

Handlers (`handlers/<name>.py`) stay entry modules: parse the delivery, call a use case
here, shape the answer. No handler imports another handler.
"""
