"""cluebus on faust-streaming: the consumer guard, the app, the worker and their operations.

* ``guard``: faust's consumer made safe for at-least-once (what faust drops is fetched again,
  nothing unprocessed is committed) and ``guarded_agent``, the only way cluebus defines an agent;
* ``app``: the idempotent ``acks=all`` transport and ``make_app`` with the bus's defaults;
* ``worker``: running an app as a process, with cluebus's logging;
* ``operations``: what runs beside the agents (rules reload, ``/metrics``, consumer lag).
"""
