"""gateway.memo: a bounded memory drops its oldest entries, never grows past its limit."""

from __future__ import annotations

from gateway.memo import remember


def test_the_oldest_entries_go_first_and_the_size_stays_at_the_limit() -> None:
    known: dict[int, str] = {}
    for n in range(10):
        assert remember(known, n, str(n), 4) == str(n)
    assert known == {6: "6", 7: "7", 8: "8", 9: "9"}
