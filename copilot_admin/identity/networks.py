"""Client address allow-lists of integration keys."""

import ipaddress


def address_allowed(address: str | None, networks) -> bool:
    """True when the list is empty (any address), or `address` is in one of the CIDR
    `networks`. An unknown address (None, unparseable) is never in a non-empty list."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    for network in networks:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False
