#!/usr/bin/env python3
"""Fixed-200 HTTP/1.1 upstream for bench/revocation.sh.

    python3 upstream.py 127.0.0.1:PORT

Answers every request with `200 ok` (keep-alive, Content-Length). One asyncio
event loop instead of http.server's thread per connection: all 50 proxies
share it, and it must not be the bottleneck of the probe traffic. Requests
with a chunked body are answered 501 and the connection closed (the probes
and the proxies in front send bodiless GETs).
"""

import asyncio
import sys

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"
NO = b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
MAX_HEAD = 64 * 1024


class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.close()
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or b"0")
                elif name == b"transfer-encoding":
                    self.transport.write(NO)
                    self.transport.close()
                    return
            if len(self.buf) < end + 4 + length:
                return  # body not complete yet
            self.buf = self.buf[end + 4 + length :]
            self.transport.write(OK)


async def main(addr):
    host, _, port = addr.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, host, int(port), backlog=1024)
    print(f"upstream listening on {addr}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: upstream.py HOST:PORT")
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        pass
