"""The customers table's reader (the enrichment and the credit check read it).

Customers table (`CUSTOMERS_TABLE`, key `customerId` S): `domain.enrichment.Customer`
items, written by the operator.
"""

from __future__ import annotations

from typing import Final

from domain.enrichment import Customer, customer_from_item
from eventcraft import dynamodb
from eventcraft.settings import env

CUSTOMERS_TABLE_ENV: Final = "CUSTOMERS_TABLE"


def load_customer(customer_id: str) -> Customer | None:
    """The customer's record (eventually consistent read), or None if the table has none."""
    item = dynamodb.get(env(CUSTOMERS_TABLE_ENV), {"customerId": customer_id}, consistent=False)
    return None if item is None else customer_from_item(item)
