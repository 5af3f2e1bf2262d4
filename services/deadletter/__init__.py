"""Dead letters: what a service could not process, kept on ``<prefix>.deadletter`` without its content.

:mod:`services.deadletter.letters` turns a refused record into a
:class:`~schemas.events.DeadLetter` (ids, coordinates, the error's type and
fields, never the values); :mod:`services.deadletter.cli` is ``cluebus
deadletters``, which lists them.
"""
