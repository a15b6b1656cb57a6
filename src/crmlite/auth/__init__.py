"""OAuth 2.0 tokens, the token check, and the scope grammar that yields a Principal."""
