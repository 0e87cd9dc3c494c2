"""The newest-frame slots: overwrite and count, round-robin, replay back-pressure."""

from __future__ import annotations

import threading
import time

from streamd.slot import FrameBoard


def make_board(*keys: str) -> tuple[FrameBoard[str], dict[str, list[int]]]:
    board: FrameBoard[str] = FrameBoard()
    drops: dict[str, list[int]] = {}
    for key in keys:
        drops[key] = []
        board.add(key, lambda k=key: drops[k].append(1))  # type: ignore[misc]
    return board, drops


def test_an_overwritten_frame_is_counted_as_dropped_and_never_taken():
    board, drops = make_board("a")
    slot = board._slots["a"]
    slot.put("a0")
    slot.put("a1")
    assert len(drops["a"]) == 1
    assert board.take(4, timeout=0) == ["a1"]
    assert board.take(4, timeout=0) == []


def test_take_serves_cameras_round_robin():
    board, _ = make_board("a", "b", "c")
    served = []
    for i in range(6):
        for key in "abc":
            board._slots[key].put(f"{key}{i}")
        (taken,) = board.take(1, timeout=0)
        served.append(taken[0])
        board.release([taken[0]])  # the worker is done with it
    assert served == ["a", "b", "c", "a", "b", "c"]


def test_take_batches_distinct_cameras():
    board, _ = make_board("a", "b", "c")
    for key in "abc":
        board._slots[key].put(key)
    assert sorted(board.take(2, timeout=0) + board.take(2, timeout=0)) == ["a", "b", "c"]


def test_take_waits_for_a_frame_and_gives_up_after_the_timeout():
    board, _ = make_board("a")
    start = time.monotonic()
    assert board.take(1, timeout=0.2) == []
    assert 0.15 < time.monotonic() - start < 2
    threading.Timer(0.1, lambda: board._slots["a"].put("late")).start()
    assert board.take(1, timeout=2) == ["late"]


def test_replay_put_waits_until_the_previous_frame_is_taken():
    board, drops = make_board("a")
    slot = board._slots["a"]
    stop = threading.Event()
    slot.put("f0", wait_taken=stop)
    second = threading.Thread(target=slot.put, args=("f1",), kwargs={"wait_taken": stop})
    second.start()
    time.sleep(0.2)
    assert second.is_alive()  # blocked: f0 not taken yet
    assert board.take(1, timeout=1) == ["f0"]
    board.release(["a"])
    second.join(2)
    assert board.take(1, timeout=1) == ["f1"]
    assert drops["a"] == []


def test_removed_camera_is_no_longer_served():
    board, _ = make_board("a", "b")
    board._slots["a"].put("a0")
    board.remove("a")
    board._slots["b"].put("b0")
    assert board.take(4, timeout=0) == ["b0"]


def test_fill_wait_gathers_a_batch_from_cameras_that_arrive_a_little_later():
    board, _ = make_board("a", "b", "c")
    for slot in board._slots.values():
        slot.set_live(True)
    board._slots["a"].put("a0")
    threading.Timer(0.05, lambda: board._slots["b"].put("b0")).start()
    threading.Timer(0.08, lambda: board._slots["c"].put("c0")).start()
    batch = board.take(8, timeout=1, fill_wait=0.5)
    assert sorted(batch) == ["a0", "b0", "c0"]


def test_fill_wait_gives_up_after_its_deadline_with_what_it_has():
    board, _ = make_board("a", "b")
    board._slots["b"].set_live(True)
    board._slots["a"].put("a0")
    start = time.monotonic()
    assert board.take(8, timeout=1, fill_wait=0.1) == ["a0"]
    assert time.monotonic() - start < 1


def test_fill_wait_does_not_wait_for_cameras_that_are_down_or_in_another_worker_s_hands():
    board, _ = make_board("up", "down", "busy", "also")
    for key in ("up", "busy", "also"):
        board._slots[key].set_live(True)
    board._slots["busy"].put("busy0")
    assert board.take(1, timeout=1) == ["busy0"]  # another worker has it now
    board._slots["up"].put("up0")
    board._slots["also"].put("also0")
    start = time.monotonic()
    batch = board.take(8, timeout=1, fill_wait=5.0)
    waited = time.monotonic() - start
    # "down" is reconnecting and "busy" cannot be taken again before release: the batch is
    # whole with the two that can deliver, and does not sit out the 5 s fill wait.
    assert sorted(batch) == ["also0", "up0"]
    assert waited < 2.5, waited


def test_a_camera_in_flight_is_not_handed_to_a_second_worker_until_released():
    board, _ = make_board("a", "b")
    board._slots["a"].put("a0")
    assert board.take(1, timeout=0) == ["a0"]
    board._slots["a"].put("a1")  # arrives while a0 is still being processed
    board._slots["b"].put("b0")
    assert board.take(2, timeout=0) == ["b0"]  # a1 waits: frames of a camera are tracked in order
    assert board.take(2, timeout=0) == []
    board.release(["a"])
    assert board.take(2, timeout=0) == ["a1"]
