"""The router: applies routing_rules.toml to every report, one referral per recipient."""
