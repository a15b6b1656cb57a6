"""The HTTP layer: Zoho's URLs, envelopes and status codes over the engine."""
