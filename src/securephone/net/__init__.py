"""Network traversal helpers of the sans-I/O core (STUN, RFC 8489)."""
