"""SIP worker processes: several cores serving the same listeners."""
