"""The Batch API's state on a real Redis: a batch is created once, a status moves only from what it was, a line
is answered once (either way) and never after its batch is retired, a lease is one coordinator's and so are the
driver's writes, and an owner's batches page newest first."""

from gateway.batch_objects import ENDED
from tasks import names


async def test_a_status_moves_only_from_the_statuses_it_names(store):
    batches = store.batches
    await batches.add_batch("b1", "alice", 1, {"id": "b1", "status": "validating"})
    assert await batches.transition("b1", "in_progress", 10, ("validating",))
    assert not await batches.transition("b1", "finalizing", 11, ("validating",))  # it is in_progress now
    assert await batches.transition("b1", "cancelling", 12, ("validating", "in_progress"))
    fields = await batches.batch("b1")
    assert (fields["status"], fields["in_progress_at"], fields["cancelling_at"]) == ("cancelling", "10", "12")
    assert "finalizing_at" not in fields and fields["owner"] == "alice"


async def test_a_batch_is_created_once_and_a_second_create_changes_nothing(store):
    batches = store.batches
    assert (
        await batches.add_batch("b0", "alice", 1, {"id": "b0", "status": "validating", "input_file_id": "f1"})
        == "added"
    )
    await batches.transition("b0", "in_progress", 2, ("validating",))
    again = await batches.add_batch("b0", "bob", 3, {"id": "b0", "status": "validating", "input_file_id": "f2"})
    assert again == "exists"
    fields = await batches.batch("b0")
    assert (fields["status"], fields["input_file_id"], fields["owner"]) == ("in_progress", "f1", "alice")
    assert await batches.batches_of("bob", None, 10) == []


async def test_a_line_is_answered_once_either_way_and_never_after_its_batch_is_retired(store, isolated_redis):
    batches = store.batches
    await batches.add_batch("b2", "alice", 1, {"id": "b2", "status": "in_progress"})
    assert await batches.record_line("b2", "q1", '{"first": true}', succeeded=True)
    assert not await batches.record_line("b2", "q1", '{"second": true}', succeeded=True)
    assert not await batches.record_line("b2", "q1", '{"failed": true}', succeeded=False)
    assert await batches.record_line("b2", "q2", '{"failed": true}', succeeded=False)
    assert await batches.line_counts("b2") == (1, 1)
    assert await batches.answered_ids("b2") == {"q1", "q2"}
    assert [line async for line in batches.lines("b2", True)] == [("q1", '{"first": true}')]
    await batches.transition("b2", "completed", 2, ("in_progress",))
    await batches.retire_batch("b2")
    assert await batches.line_counts("b2") == (0, 0) and "b2" not in await batches.active_batches()
    # a driver that wakes after the batch ended: its answer would be a hash nobody ever deletes
    assert not await batches.record_line("b2", "q3", '{"late": true}', succeeded=True)
    assert not await batches.record_line("b2", "q4", '{"late": true}', succeeded=False)
    assert not isolated_redis.exists(names.batch_lines_key("b2", True), names.batch_lines_key("b2", False))


async def test_a_drivers_writes_land_only_while_it_holds_the_lease(store):
    batches = store.batches
    await batches.add_batch("b4", "alice", 1, {"id": "b4", "status": "in_progress", "completed": "0"})
    assert await batches.take_lease("b4", "gateway-a", 60)
    assert await batches.update_driven_batch("b4", "gateway-a", {"completed": 7, "eta_s": "1.5"})
    await batches.release_lease("b4", "gateway-a")
    assert await batches.take_lease("b4", "gateway-b", 60)
    assert not await batches.update_driven_batch("b4", "gateway-a", {"completed": 0})  # stalled past its lease
    await batches.release_lease("b4", "gateway-b")
    assert not await batches.update_driven_batch("b4", "gateway-a", {"completed": 0})  # nobody's lease
    fields = await batches.batch("b4")
    assert (fields["completed"], fields["eta_s"]) == ("7", "1.5")


async def test_a_lease_is_one_coordinators_until_released(store):
    batches = store.batches
    assert await batches.take_lease("b3", "gateway-a", 60)
    assert not await batches.take_lease("b3", "gateway-b", 60)
    assert not await batches.renew_lease("b3", "gateway-b", 60)
    assert await batches.renew_lease("b3", "gateway-a", 60)
    await batches.release_lease("b3", "gateway-b")  # not its lease: nothing happens
    assert not await batches.take_lease("b3", "gateway-b", 60)
    await batches.release_lease("b3", "gateway-a")
    assert await batches.take_lease("b3", "gateway-b", 60)


async def test_an_owners_batches_page_newest_first_and_running_ones_show_progress(store):
    batches = store.batches
    for i in range(5):
        fields = {"id": f"p{i}", "status": "in_progress", "endpoint": "/v1/score", "created_at": str(100 + i)}
        await batches.add_batch(f"p{i}", "bob", 100 + i, fields)
    await batches.add_batch("other", "carol", 200, {"id": "other", "status": "validating", "endpoint": "/v1/score",
                                                    "created_at": "200"})  # fmt: skip
    assert await batches.batches_of("bob", None, 2) == ["p4", "p3"]
    assert await batches.batches_of("bob", "p3", 2) == ["p2", "p1"]
    assert await batches.batches_of("bob", "p1", 2) == ["p0"]
    await batches.update_batch("p0", {"total": "10", "completed": "4", "eta_s": "3.5"})
    [first] = [info for info in await batches.running() if info.id == "p0"]
    assert (first.owner, first.total, first.completed, first.failed, first.eta_s) == ("bob", 10, 4, 0, 3.5)


async def test_an_owner_at_its_cap_of_unfinished_batches_makes_no_more_until_one_is_retired(store):
    batches = store.batches

    async def add(batch_id: str, owner: str = "dora") -> str:
        return await batches.add_batch(batch_id, owner, 1, {"id": batch_id, "status": "validating"}, max_active=2,
                                       ended=ENDED)  # fmt: skip

    for batch_id in ("c1", "c2"):
        assert await add(batch_id) == "added"
    assert await add("c3") == "over_cap"
    assert await batches.batch("c3") is None  # nothing of it was written
    assert await add("e1", "erin") == "added"
    await batches.transition("c1", "completed", 2, ("validating",))  # ended, not yet retired: finished
    assert await add("c3") == "added"
    await batches.retire_batch("c1")
    await batches.retire_batch("c2")
    assert await add("c4") == "added"
