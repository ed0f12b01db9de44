"""Certificates: generation, loading, TLS contexts and pinning."""
