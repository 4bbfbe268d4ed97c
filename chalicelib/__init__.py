"""Clipron OAuth: an OAuth 2.0 authorization server on AWS Chalice, DynamoDB and KMS."""
