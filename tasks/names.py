"""Every queue, task, Redis key and channel name inferq uses (arq keeps its keys the same way).

Nothing else in inferq spells a key: `JobStore` (tasks/store.py) builds them all from here.
"""

CHAT_TASK = "inferq.chat"
SCORE_TASK = "inferq.score"
JOB_TASKS = (CHAT_TASK, SCORE_TASK)

# One queue per served model name: a job can only ever reach a worker serving its model.
QUEUE_PREFIX = "inferq.model."

PREFIX = "inferq:"
CANCEL_CHANNEL = f"{PREFIX}cancel"  # job ids to cancel; every worker listens
WORKER_KEY_PATTERN = f"{PREFIX}worker:*"
# Prefixes of per-job keys; a Lua script that sweeps an owner's jobs builds their keys from these.
RECORD_KEY_PREFIX = f"{PREFIX}record:"
JOB_KEY_PREFIX = f"{PREFIX}job:"
LEASE_KEY_PREFIX = f"{PREFIX}lease:"


def queue_for_model(model: str) -> str:
    return f"{QUEUE_PREFIX}{model}"


def queue_lists(model: str, priorities: range = range(10)) -> list[str]:
    """The Redis lists kombu keeps a model's queue in: one per priority, `<queue>:<priority>` (0 bare)."""
    queue = queue_for_model(model)
    return [queue if priority == 0 else f"{queue}:{priority}" for priority in priorities]


def model_of_queue_list(key: str) -> str:
    model = key.removeprefix(QUEUE_PREFIX)
    base, _, priority = model.rpartition(":")
    return base if base and priority.isdigit() else model


def events_key(job_id: str) -> str:
    """The job's replay log (a Redis stream whose entry ids are `0-<seq>`)."""
    return f"{PREFIX}events:{job_id}"


def live_channel(job_id: str) -> str:
    """The job's live pub/sub channel; carries the same events as the replay log, as they happen."""
    return f"{PREFIX}live:{job_id}"


def job_id_of_live_channel(channel: str) -> str:
    return channel.removeprefix(f"{PREFIX}live:")


def record_key(job_id: str) -> str:
    return f"{RECORD_KEY_PREFIX}{job_id}"


def job_key(job_id: str) -> str:
    """What the producer knew at submit time (model, kind, deadline), for handles rebuilt from an id."""
    return f"{JOB_KEY_PREFIX}{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def sent_key(job_id: str) -> str:
    """Set once an idempotent submit has sent its job's message: a retry under the same key sends nothing."""
    return f"{PREFIX}sent:{job_id}"


def resend_key(job_id: str) -> str:
    """Taken by the one retry that sends again the message of a first try that died before sending it."""
    return f"{PREFIX}resend:{job_id}"


def lease_key(job_id: str) -> str:
    """Held by the one worker running the job; a second delivery waits on it instead of running twice."""
    return f"{LEASE_KEY_PREFIX}{job_id}"


def deliveries_key(job_id: str) -> str:
    return f"{PREFIX}deliveries:{job_id}"


def handbacks_key(job_id: str) -> str:
    """Deliveries a worker gave back whole (its shutdown's grace ran out): not deaths, never held against the job."""
    return f"{PREFIX}handbacks:{job_id}"


def worker_key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}"


def owner_jobs_key(owner: str) -> str:
    """The jobs an owner (a gateway tenant) has in flight, for its quota: a sorted set by submit time.
    Finished and vanished jobs are swept out of it whenever the owner submits again."""
    return f"{PREFIX}owner:{owner}:jobs"


# The Batch API's state (gateway/batches.py): files and batches, each a hash; a tenant's own, listed newest first.
def file_key(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}"


def owner_files_key(owner: str) -> str:
    return f"{PREFIX}files-of:{owner}"


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}"


def owner_batches_key(owner: str) -> str:
    return f"{PREFIX}batches-of:{owner}"


# Batches not finished yet, which some gateway must drive: a coordinator takes one by its lease.
ACTIVE_BATCHES_KEY = f"{PREFIX}batches-active"


def owner_active_batches_key(owner: str) -> str:
    """An owner's batches not finished yet: what its cap on batches at once counts."""
    return f"{PREFIX}batches-active-of:{owner}"


def batch_lease_key(batch_id: str) -> str:
    return f"{PREFIX}batch-lease:{batch_id}"


def batch_lines_key(batch_id: str, succeeded: bool) -> str:
    """The batch's answered (or failed) lines by custom_id, each written once, until its files are written."""
    return f"{PREFIX}batch-{'out' if succeeded else 'err'}:{batch_id}"
