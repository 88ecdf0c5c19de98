"""A line's tax, shared among its units in one rule: the units given back (cancelled or
refunded) take, together, the tax of that many units, rounded half up, so that every
unit of a line given back, in any number of steps, gives back exactly the line's tax.
"""

from __future__ import annotations


def tax_of(line_tax: int, ordered: int, units: int) -> int:
    """The tax of the first ``units`` of ``ordered``, rounded half up (minor units)."""
    if ordered <= 0 or units <= 0:
        return 0
    return (2 * line_tax * min(units, ordered) + ordered) // (2 * ordered)


def tax_share(line_tax: int, ordered: int, before: int, units: int) -> int:
    """The tax ``units`` more take when ``before`` of the line's ``ordered`` are gone."""
    return tax_of(line_tax, ordered, before + units) - tax_of(line_tax, ordered, before)
