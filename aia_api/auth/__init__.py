"""Identity and access: principals, roles, passwords, tokens and API keys."""
