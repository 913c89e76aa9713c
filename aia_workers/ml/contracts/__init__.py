"""What the API and the ML workers share, light enough for the API.

Payloads, training options, table signatures and profiles: no numpy, pandas or trainers.
"""
