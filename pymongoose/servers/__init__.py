"""The WSGI and ASGI servers: one core, two adapters.

The core, shared by both:

- :mod:`.config`: every option and limit, with its default, checked once;
- :mod:`.listen`: the listener (RFC 9112 screening and timeouts in C), the banner;
- :mod:`.intake`: a request body handed to the application as it arrives;
- :mod:`.writer`: the one checked path every response byte takes, and the error
  policy (500 if nothing was sent, a close if the head left);
- :mod:`.accesslog`: one line per response.

The adapters: :mod:`.wsgi` (applications on worker threads; the environ in
:mod:`.wsgi_environ`) and :mod:`.asgi`
(applications as tasks on the asyncio loop: :mod:`.asgi_http`,
:mod:`.asgi_websocket`, :mod:`.lifespan`, :mod:`.tasks`). ``pymongoose.wsgi`` and
``pymongoose.asgi`` are their public names.
"""
