"""Random ids: hex of the asked size, never repeated, and not shared with a fork."""

from __future__ import annotations

import os

from gateway.randomids import BATCH, RandomIds


def test_ids_are_hex_of_the_size_and_unique_across_batches() -> None:
    ids = RandomIds(6)
    drawn = [ids() for _ in range(3 * BATCH + 1)]
    assert all(len(value) == 12 and int(value, 16) >= 0 for value in drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_forked_child_does_not_reuse_the_parents_batch() -> None:
    ids = RandomIds(8)
    ids()  # a batch is drawn; the rest of it would be next in both processes
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(writer, ids().encode())
        os._exit(0)
    os.close(writer)
    _, status = os.waitpid(child, 0)
    from_child = os.read(reader, 64).decode()
    os.close(reader)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(from_child) == 16
    assert from_child != ids()
