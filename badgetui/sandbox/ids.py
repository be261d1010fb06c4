"""Deterministic identifiers, so two emulator runs with the same rng_seed hand out the same ids."""

from __future__ import annotations

import random
import uuid


class IdSource:
    """UUIDs, hex tokens and integer ids drawn from a seeded generator (not from the OS)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids-{seed}")
        self._next_int = 1

    def uuid(self) -> str:
        """A random-looking (version 4) UUID string."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self, length: int = 16) -> str:
        """A lowercase hex string (Accredible's `encoded_id` looks like this)."""
        return f"{self._rng.getrandbits(length * 4):0{length}x}"

    def integer(self) -> int:
        """The next integer id (Accredible credentials): unique across accounts, increasing."""
        value = self._next_int
        self._next_int += 1
        return value
