"""``/v1/agents``: agent types, a tenant's agents, and their runs."""
