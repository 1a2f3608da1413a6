"""The Batch API's state on a real Redis: a status moves only from what it was, a line is answered once
(either way), a lease is one coordinator's, and an owner's batches page newest first."""


async def test_a_status_moves_only_from_the_statuses_it_names(store):
    batches = store.batches
    await batches.add_batch("b1", "alice", 1, {"id": "b1", "status": "validating"})
    assert await batches.transition("b1", "in_progress", 10, ("validating",))
    assert not await batches.transition("b1", "finalizing", 11, ("validating",))  # it is in_progress now
    assert await batches.transition("b1", "cancelling", 12, ("validating", "in_progress"))
    fields = await batches.batch("b1")
    assert (fields["status"], fields["in_progress_at"], fields["cancelling_at"]) == ("cancelling", "10", "12")
    assert "finalizing_at" not in fields and fields["owner"] == "alice"


async def test_a_line_is_answered_once_either_way(store):
    batches = store.batches
    assert await batches.record_line("b2", "q1", '{"first": true}', succeeded=True)
    assert not await batches.record_line("b2", "q1", '{"second": true}', succeeded=True)
    assert not await batches.record_line("b2", "q1", '{"failed": true}', succeeded=False)
    assert await batches.record_line("b2", "q2", '{"failed": true}', succeeded=False)
    assert await batches.line_counts("b2") == (1, 1)
    assert await batches.answered_ids("b2") == {"q1", "q2"}
    assert [line async for line in batches.lines("b2", True)] == [("q1", '{"first": true}')]
    await batches.add_batch("b2", "alice", 1, {"id": "b2", "status": "completed"})
    await batches.retire_batch("b2")
    assert await batches.line_counts("b2") == (0, 0) and "b2" not in await batches.active_batches()


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
