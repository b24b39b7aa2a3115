"""The sans-IO engine both controllers drive (private: the public API is in ``restate``).

One module per responsibility (docs/architecture.md, "The layers", follows one write
through them):

- ``requests.py``: the I/O requests the engine yields, and ``DirectIO`` (plain functions a
  sync driver lends instead);
- ``engine.py``: ``Engine``, the registries and every operation as a generator of requests;
- ``direct.py``: ``set_direct``, the common sync write (and its deliveries) without a
  generator;
- ``audience.py``: who hears a path (nobody, a ``Route`` of plain subscriptions, or "ask
  the planner"), remembered per path;
- ``subscriptions.py``: the subscription trie, who hears a write and in what order;
- ``callbacks.py``: callback ids and their callbacks, both ways, without scanning;
- ``batching.py``: ``BatchLog``, the undo log of a batch, rollback and coalescing;
- ``dispatch.py``: ``Dispatcher``, rounds of deliveries, error collection, ``max_rounds``;
- ``graph.py``: ``DerivationGraph``, derivation sources and destinations, cycle check;
- ``topology.py``: topological ranks kept valid incrementally;
- ``tracking.py``: the footprint recorder (what a tracked function read and wrote) and the
  tracked function's records (``Tracker``, ``Status``, ``Why``, ``TrackerInfo``);
- ``scheduler.py``: ``Scheduler``, when tracked functions run (policies, ``deferring()``,
  ``run_deferred()``);
- ``statuses.py``: ``Statuses``, the failure, stale and refused marks (loops refused);
- ``footprints.py``: the footprint graph the scheduler orders by and searches for loops.
"""
