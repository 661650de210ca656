"""seqrec: sequential and session-based recommendation in JAX."""
