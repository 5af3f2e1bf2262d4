"""The reconciler: every published report has a routing decision, or someone hears about it.

Independent of the router: it reads the topics themselves (``ledger`` is the pure core,
``service`` the Kafka side, ``cli`` the commands ``cluebus reconciler`` and
``cluebus reconcile``).
"""
