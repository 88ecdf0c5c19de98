from hypothesis import given
from hypothesis import strategies as st

from fulfillment.tax_share import tax_of, tax_share


def test_a_unit_takes_its_share_rounded_half_up():
    assert tax_of(100, 3, 1) == 33
    assert tax_of(100, 3, 2) == 67
    assert tax_share(100, 3, 1, 1) == 34
    assert tax_share(5, 2, 0, 1) == 3  # 2.5 rounds up
    assert tax_share(0, 4, 0, 2) == 0


@given(
    line_tax=st.integers(0, 10**7),
    steps=st.lists(st.integers(1, 5), min_size=1, max_size=20),
)
def test_every_unit_given_back_in_any_steps_gives_back_the_line_tax(line_tax, steps):
    ordered = sum(steps)
    before, shares = 0, []
    for units in steps:
        shares.append(tax_share(line_tax, ordered, before, units))
        before += units
    assert sum(shares) == line_tax
    assert all(share >= 0 for share in shares)
