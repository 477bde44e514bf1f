"""The agent desktop service: the customer 360 and live flags where agents work (issue 12).

An HTTP service (Starlette on uvicorn) in front of Redis and Kafka: it reads
through :mod:`state.reader` only, never the engine, and the engine never
imports it (``tests/test_layout.py``). Modules, one idea each:

* :mod:`gateway.auth` -- bearer tokens (JWT, HS256) and who is asking;
* :mod:`gateway.access` -- who may see which customer; :mod:`gateway.masking` -- what of it (an allow-list
  for roles without PII);
* :mod:`gateway.audit` -- every read and subscription, allowed or denied, to a bounded Redis stream;
  :mod:`gateway.refusals` -- how many refusals one caller writes to it, and how often it subscribes;
* :mod:`gateway.push` -- live flags: one Redis reader per process, fanned out by customer;
  :mod:`gateway.stream` -- the Server-Sent Events route that subscribes to it; :mod:`gateway.positions` --
  a connection's position in the streams (``Last-Event-ID``);
* :mod:`gateway.feedback` -- agents' verdicts written back as contract events;
* :mod:`gateway.api` -- the HTTP routes; :mod:`gateway.problems` -- errors as problem+json;
  :mod:`gateway.openapi` -- the routes' OpenAPI document;
* :mod:`gateway.app` -- the application and its lifespan; :mod:`gateway.cli` -- ``livesignals serve`` / ``token``;
  :mod:`gateway.headers_timeout` -- uvicorn's HTTP protocol with a deadline on the request head;
* ``page/`` -- the agent card, served by the service.
"""
