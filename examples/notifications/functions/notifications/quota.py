"""The daily send quota in DynamoDB: one item per day, `pk` = "quota#<day>", with `used`
(a count) and `holders` (the signup event ids that hold a unit), so that a retried
reservation or release changes nothing the second time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventcraft import clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class QuotaExhausted(Exception):
    """No unit of the day's quota is left: the email is not sent today."""


class QuotaStore:
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client = client or clients.client("dynamodb")

    @staticmethod
    def key(day: str) -> dict[str, Any]:
        return {"pk": {"S": f"quota#{day}"}}

    def reserve(self, day: str, holder: str, *, limit: int) -> int:
        """Take one unit of `day`'s quota for `holder`; returns the units used. Raises
        QuotaExhausted when `limit` units are taken (by other holders)."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=self.key(day),
                UpdateExpression="ADD used :one, holders :holder",
                ConditionExpression=(
                    "(attribute_not_exists(used) OR used < :limit) AND NOT contains(holders, :id)"
                ),
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":holder": {"SS": [holder]},
                    ":id": {"S": holder},
                    ":limit": {"N": str(limit)},
                },
                ReturnValues="UPDATED_NEW",
            )
            return int(response["Attributes"]["used"]["N"])
        except self.client.exceptions.ConditionalCheckFailedException:
            item = self.client.get_item(
                TableName=self.table, Key=self.key(day), ConsistentRead=True
            ).get("Item", {})
            if holder in item.get("holders", {}).get("SS", []):
                return int(item["used"]["N"])  # reserved by an earlier attempt
            raise QuotaExhausted(
                f"the quota of {limit} welcome emails for {day} is used up; raise "
                "notifications:dailyQuota to send more"
            ) from None

    def release(self, day: str, holder: str) -> bool:
        """Give `holder`'s unit back; False when it holds none (nothing to undo)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.key(day),
                UpdateExpression="ADD used :minus_one DELETE holders :holder",
                ConditionExpression="contains(holders, :id)",
                ExpressionAttributeValues={
                    ":minus_one": {"N": "-1"},
                    ":holder": {"SS": [holder]},
                    ":id": {"S": holder},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
