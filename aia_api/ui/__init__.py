"""The dashboard at ``/ui``: one page and its static assets, served by the API."""
