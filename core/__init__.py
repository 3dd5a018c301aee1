"""Plain Python shared by every app and by the pipeline stages; no Django anywhere in it.

``text`` is the one text and number policy of every boundary (NUL, unpaired
surrogates, invisible-only text, non-finite numbers, 64-bit integers, datetimes).
"""
