"""Department inboxes: receive referrals, acknowledge them (kafka-python)."""
