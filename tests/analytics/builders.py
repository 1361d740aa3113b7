"""A hand-checkable event log (days counted from Monday 2024-01-01, events at noon UTC).

user  events (day: type)                      first  returns   purchases on days
a     0 view, 0 purchase, 1 purchase         0      day 1     {0, 1}  repeat
b     0 purchase, 0 purchase, 5 view         0      day 5     {0}
c     2 view, 20 view                        2      day 18    -
d     3 purchase                             3      never     {3}
e     31 view, 32 purchase                   31     day 1     {32}
f     35 purchase, 40 purchase               35     day 5     {35, 40} repeat

January cohort (a, b, c, d): day-1 retention 1/4, day-7 2/4, day-30 3/4.
February cohort (e, f): day-1 1/2; day 7 and 30 not observable (the log ends on day 40).
"""

from __future__ import annotations

import pandas as pd

from coldbrew.data import events_from_frame

MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC
ROWS = [
    ("a", 0, "view"), ("a", 0, "purchase"), ("a", 1, "purchase"),
    ("b", 0, "purchase"), ("b", 0, "purchase"), ("b", 5, "view"),
    ("c", 2, "view"), ("c", 20, "view"),
    ("d", 3, "purchase"),
    ("e", 31, "view"), ("e", 32, "purchase"),
    ("f", 35, "purchase"), ("f", 40, "purchase"),
]


def hand_events():
    frame = pd.DataFrame(
        [(u, f"i{n}", MONDAY + day * 86_400 + 43_200 + n, ev) for n, (u, day, ev) in enumerate(ROWS)],
        columns=["user_id", "item_id", "timestamp", "event"],
    )
    return events_from_frame(frame)[0]
