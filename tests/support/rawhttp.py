"""Requests over a plain socket, with header bytes exactly as given: HTTP clients refuse
to send a NUL, a latin-1 byte or an over-long line in a header; a stranger's script does
not."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, text

from fulfillment.models import Base


async def raw_post(
    client, path: str, *, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    """(status, body) of one ``POST`` to the test server of ``client``."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
            b"Content-Type: application/json", f"Content-Length: {len(body)}".encode(),
            *(name + b": " + value for name, value in headers)]  # fmt: skip
    writer.write(b"\r\n".join([*head, b"", b""]) + body)
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    head_bytes, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_bytes.lower():
        payload = dechunk(payload)
    return int(status_line.split(b" ", 2)[1]), payload


def dechunk(payload: bytes) -> bytes:
    out = b""
    while payload:
        size, _, payload = payload.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, payload = out + payload[:n], payload[n + 2 :]
    return out


def fingerprint(engine: Engine) -> dict[str, str]:
    """Every table's rows, hashed: what 'nothing stored' is checked against."""
    with engine.connect() as conn:
        return {
            table.name: conn.scalar(
                text(
                    f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                    f'FROM "{table.name}" t'
                )
            )
            for table in Base.metadata.sorted_tables
        }
