"""AIA's HTTP front end: authenticate, validate, enqueue, stream."""
