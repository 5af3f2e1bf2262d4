"""``cluebus console``: the web console where departments work their referrals in a browser.

One FastAPI service for every department, pages rendered on the server (Jinja2),
no JavaScript, no CDN, HTTPS served directly. Modules by job:

``settings``  ConsoleSettings (``CLUEBUS_CONSOLE_*``, ``[console]``) and the dev certificate
``users``     the users file (``cluebus console user add|disable|passwd``), scrypt hashes
``auth``      sessions, CSRF tokens, sign-in throttling and lockout (pure, clock injected)
``runtime``   one ``DepartmentInbox`` per department on its own thread; the escalations and
              status feeds the supervisors' and joint meeting office's pages read
``views``     what a page shows: queue rows, clocks, the redacted copy as a tree (pure)
``i18n``      Chinese first, English available; department names from the rules
``app``       the FastAPI app, security headers and error pages; ``routes``: the pages
``metrics``   ``cluebus_console_*``
``cli``       ``cluebus console`` and its ``user`` commands
"""
