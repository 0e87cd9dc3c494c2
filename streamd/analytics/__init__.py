"""Events from tracks: lines crossed, zones entered and left, tracks started and ended.

- ``geometry``: pure plane geometry in normalized picture coordinates
- ``lines``, ``zones``, ``tracks``: the state machines, pure and time-based
- ``stage``: a camera's analytics, run after tracking, events onto the result
- ``events``: the ``streamd.event/1`` message
- ``counts``: line totals persisted in state_dir
- ``snapshots``: JPEGs of the object and the frame, encoded off the inference thread
"""
