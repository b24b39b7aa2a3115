"""The sans-IO engine both controllers drive (private: the public API is in ``restate``).

``requests.py`` the I/O requests, ``engine.py`` the operations, ``batching.py`` the undo log
and coalescing, ``dispatch.py`` rounds of deliveries, ``subscriptions.py`` who hears a path,
``graph.py`` derivations in topological order, ``tracking.py`` the footprint recorder (what a
tracked function read and wrote) and its records, ``scheduler.py`` when tracked functions run
(deferral, order, loops refused, failure marks), ``footprints.py`` the graph it reasons on.
"""
