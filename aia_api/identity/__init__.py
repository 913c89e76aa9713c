"""Identity and access: principals, roles, passwords, tokens, API keys, MFA and the audit log."""
