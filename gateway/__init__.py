"""An OpenAI-compatible HTTP gateway over the queue, and a web chat page. Torch-free.

Every request becomes a queued job served by the fleet; the gateway keeps nothing of its own (each
answer lives in Redis as the job's meta, replay log and record), so any number of replicas can run
and a stream survives the gateway process that started it.
"""
