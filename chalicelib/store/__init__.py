"""State in DynamoDB: records the protocol works with, and the one store that reads and writes them."""
