"""Many streams sharing SR workers: one budget across streams (``budget``); ``serve --ray``'s
stream actors (``actors``) and the front that feeds them (``runner``), imported on demand
(they need Ray, an optional extra)."""

from .budget import Allocation, Offer, Worker, allocate_equal, allocate_global

__all__ = ["Allocation", "Offer", "Worker", "allocate_equal", "allocate_global"]
