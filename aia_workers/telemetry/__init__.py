"""What operators watch: the workers' metrics."""
