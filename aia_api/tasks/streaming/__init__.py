"""What keeps task event streams in bounds: per-principal slots, tickets, credential re-checks."""
