"""Listen addresses as written in the config (`host:port`, `[v6-address]:port`)."""


def listen_address(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6-address]:port` → (host, port); ValueError if malformed.

    An empty host means all IPv4 addresses."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)
