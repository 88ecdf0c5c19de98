"""The order number a customer reads in e-mails: short, spoken over the phone without
ambiguity, and derived from the order id alone (nothing to store, nothing to allocate).

It is the id's first 40 bits in Crockford's base 32 (digits and upper-case letters
without I, L, O and U), as two groups of four: ``K3F9-2QXA``. Forty random bits make
two orders share a number about once in a million orders: support finds an order by
its number together with the customer's e-mail, and the id stays the key.
"""

from __future__ import annotations

import uuid

#: Crockford's base-32 alphabet.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Bits of the id the number shows (eight base-32 digits).
BITS = 40


def order_number(order_id: uuid.UUID | str) -> str:
    value = uuid.UUID(str(order_id)).int >> (128 - BITS)
    digits = "".join(ALPHABET[(value >> shift) & 31] for shift in range(BITS - 5, -1, -5))
    return f"{digits[:4]}-{digits[4:]}"
