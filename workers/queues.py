"""The queues workers consume; named once, in ``fulfillment.messages``."""

from fulfillment.messages import QUEUES

#: Every queue a worker consumes by default.
ALL = QUEUES
