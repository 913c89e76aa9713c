"""Log lines as JSON objects (``AIA_LOG_FORMAT=json``) or as text, in every AIA process.

``json_lines`` formats a record with the process, and the task, tenant,
queue and trace it was logged in; ``setup`` applies it to a plain process or
uvicorn; ``celery_hooks`` to Celery's own logging in workers and beat.
"""
