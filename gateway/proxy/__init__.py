"""The stateful proxy (RFC 3261 §16): routing, Record-Route, flow tokens. Pure."""
