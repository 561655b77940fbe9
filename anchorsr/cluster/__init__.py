"""Many streams sharing SR workers: one budget across streams (``budget``)."""

from .budget import Allocation, Offer, Worker, allocate_equal, allocate_global

__all__ = ["Allocation", "Offer", "Worker", "allocate_equal", "allocate_global"]
