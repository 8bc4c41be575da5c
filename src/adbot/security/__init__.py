"""Security primitives with no database or web imports: passwords, tokens, API keys."""
