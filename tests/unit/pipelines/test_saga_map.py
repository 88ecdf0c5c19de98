"""The saga map (``pipelines.saga``) is the one description of an order's life: every
live state has its stage, every step it names exists and has an actor, and what it says
happens on entry is what the steps do."""

from __future__ import annotations

from fulfillment import messages as m
from fulfillment.states import TERMINAL
from fulfillment.states import OrderStatus as S
from pipelines.actors import ACTORS, STEPS
from pipelines.saga import BY_STATE, CHAINS, SAGA, Entry, steps_of


def test_every_live_state_but_needs_attention_has_one_stage():
    # (an order on hold has no stage either: only an operator's release moves it on)
    live = {state for state in S if state not in TERMINAL} - {S.NEEDS_ATTENTION, S.ON_HOLD}
    assert set(BY_STATE) == live
    assert len(SAGA) == len(BY_STATE)


def test_every_step_the_map_names_exists_and_every_message_has_an_actor():
    messages = {message for message, _ in ACTORS}
    for stage in SAGA:
        assert stage.message in messages, stage
        assert stage.deadline >= 1
        assert all(name in STEPS for name in stage.steps), stage
    for message, steps in CHAINS.items():
        assert message in messages and all(name in STEPS for name in steps)
    for message in messages:  # every actor runs something
        assert all(name in STEPS for name in steps_of(message))


def test_the_stage_a_message_runs_starts_with_its_own_step():
    for stage in SAGA:
        assert stage.steps[0] == stage.message[0]


def test_the_happy_path_needs_only_the_message_that_placed_the_order():
    # pending's message runs everything up to the label and its capture; nothing on the
    # way is queued
    assert steps_of(m.RESERVE_INVENTORY) == (
        "reserve_inventory", "request_payment", "ship_order", "capture_payment")  # fmt: skip
    assert [BY_STATE[s].entry for s in (S.RESERVED, S.AUTHORIZED, S.PAID, S.FULFILLING)] == [
        Entry.INLINE] * 4  # fmt: skip
    assert BY_STATE[S.PENDING].entry is Entry.QUEUE
    assert {BY_STATE[s].entry for s in (S.PAYMENT_PENDING, S.REQUIRES_ACTION, S.SHIPPED,
                                        S.IN_TRANSIT)} == {Entry.WAIT}  # fmt: skip
