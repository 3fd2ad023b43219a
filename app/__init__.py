"""NormScope's service: the REST API, the run store, the worker processes (see main.create_app)."""
