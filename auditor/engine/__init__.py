"""The drift engine: pure functions over plain dicts, no I/O.

Records that cross module boundaries (:mod:`.records`), field paths (:mod:`.paths`),
normalisation and server defaults (:mod:`.normalise`, :mod:`.defaults`,
:mod:`.quantity`), list merge keys (:mod:`.schema`), field ownership and who is behind a
manager (:mod:`.fieldsv1`, :mod:`.managers`), the comparison itself (:mod:`.compare`,
:mod:`.deltas`), what is ignored and what is in scope (:mod:`.ignore`, :mod:`.scope`,
:mod:`.kinds`), and last run's verdicts that need not be recomputed (:mod:`.verdicts`).
"""
