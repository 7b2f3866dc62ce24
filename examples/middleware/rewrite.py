#!/usr/bin/env python3
"""A mirrorline replay middleware (see README.md in this directory).

Reads one JSON object per line on stdin, writes one answer per request on
stdout (flushed per line): every request gets the header X-Middleware: python
(any captured header of that name is replaced), and requests whose path
starts with /drop are dropped. Response lines (replay.middleware.responses)
are read and ignored. Standard library only. Settings, from the environment:

  REWRITE_HEADER       header to set         (default X-Middleware)
  REWRITE_VALUE        its value             (default python)
  REWRITE_DROP_PREFIX  path prefix to drop   (default /drop; empty: drop nothing)

Run it with:  replay.middleware.command: [python3, examples/middleware/rewrite.py]
Diagnostics go to stderr, which mirrorline passes through; stdout carries
answers only.
"""
import json
import os
import sys

HEADER = os.environ.get("REWRITE_HEADER", "X-Middleware")
VALUE = os.environ.get("REWRITE_VALUE", "python")
DROP_PREFIX = os.environ.get("REWRITE_DROP_PREFIX", "/drop")


def answer(msg):
    """The answer to one request message."""
    req = msg["request"]
    path = req.get("url", "").split("?", 1)[0]
    if DROP_PREFIX and path.startswith(DROP_PREFIX):
        return {"id": msg["id"], "drop": True}
    headers = [h for h in req.get("headers") or [] if h[0].lower() != HEADER.lower()]
    headers.append([HEADER, VALUE])
    req["headers"] = headers
    # The body stays base64 as it came: it is not decoded here.
    return {"id": msg["id"], "request": req}


def main():
    out = sys.stdout
    for raw in sys.stdin.buffer:  # one line at a time, as soon as it arrives
        try:
            msg = json.loads(raw)
        except ValueError:
            print("rewrite.py: a line is not JSON; skipped", file=sys.stderr)
            continue
        if msg.get("type") != "request":
            continue  # responses: nothing to answer
        out.write(json.dumps(answer(msg), separators=(",", ":")) + "\n")
        out.flush()


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
