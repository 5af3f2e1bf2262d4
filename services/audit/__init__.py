"""The access record: who opened which referral's personal data, read back with the routing decisions."""
