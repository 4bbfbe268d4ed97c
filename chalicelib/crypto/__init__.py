"""Cryptography: random tokens and digests, passwords, KMS envelopes, the signing-key ring."""
