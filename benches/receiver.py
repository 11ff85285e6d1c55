#!/usr/bin/env python3
"""A webhook receiver for the events benchmark (benches/load.py --only events): answers every
POST 200 at once over keep-alive connections and counts the events it got (by
`Gridlight-Event-Id`: distinct ones and repeats); `GET /stats` answers the counts as JSON.
Usage: receiver.py PORT"""

import asyncio
import json
import sys
import time

seen = set()
stats = {"count": 0, "duplicates": 0, "last_at": None}


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if method == "GET":
                body = json.dumps(stats).encode()
            else:
                event = headers.get("gridlight-event-id")
                if event in seen:
                    stats["duplicates"] += 1
                else:
                    seen.add(event)
                    stats["count"] += 1
                    stats["last_at"] = time.time()
                body = b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
