"""Shells on 127.0.0.1: real sockets, bounded waits."""
