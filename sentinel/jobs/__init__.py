"""Work the service does off the request path: the job interface (base), the in-process
pool used by ``sentinel serve`` (inprocess), the scan job (scan) and, later, Celery."""
