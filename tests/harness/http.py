"""One HTTP client for the tests' one-off calls to servers on loopback.

`httpx.post(...)` and its siblings build a client, TLS context included, for every call:
~20 ms of CPU each, which the 200-request tests paid 400 times. `HTTP` opens a new
connection per request as those calls do (no keep-alive: a test that stops a server
sees what a fresh call sees), with the same default timeout (5 s), and builds its TLS
context once."""

import httpx

HTTP = httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0))
