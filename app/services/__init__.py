"""What the routers call: plain functions and classes over the store and the executor.

runs.py (create, read, cancel, export runs), claims.py (the claims lab over runs),
watched.py (runs of a model of one's own, whose frames a client sends), sweeps.py (grids of
runs over config fields × seeds, fed to the executor as it has room).
"""
