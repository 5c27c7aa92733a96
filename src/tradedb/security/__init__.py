"""Security: the hash-chained audit trail and application-side encryption of secrets."""
