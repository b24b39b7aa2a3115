"""The sans-IO engine both controllers drive (private: the public API is in ``restate``).

``requests.py`` the I/O requests, ``engine.py`` the operations, ``batching.py`` the undo log
and coalescing, ``dispatch.py`` rounds of deliveries, ``subscriptions.py`` who hears a path,
``graph.py`` derivations in topological order, ``tracking.py`` the read recorder.
"""
