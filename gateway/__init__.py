"""Wedge's SIP side: messages, transactions, the proxy, transports and the `wedge` command."""
