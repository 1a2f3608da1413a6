import pytest
from pydantic import ValidationError

from tasks.app import make_app
from tasks.config import QueueSettings


def test_the_app_speaks_json_only_and_acks_late():
    conf = make_app(QueueSettings(redis_url="redis://example:6379/3")).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events and conf.task_send_sent_event


def test_the_visibility_timeout_outlives_long_jobs():
    conf = make_app(QueueSettings(visibility_timeout_s=7200)).conf
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    assert QueueSettings().visibility_timeout_s >= 3600


def test_priorities_zero_to_nine_with_zero_first():
    options = make_app().conf.broker_transport_options
    assert options["priority_steps"] == list(range(10)) and options["queue_order_strategy"] == "priority"


def test_rediss_turns_on_certificate_checks_and_passwords_pass_through():
    conf = make_app(QueueSettings(redis_url="rediss://:s3cret@cache.example:6380/0")).conf
    assert conf.broker_use_ssl["ssl_cert_reqs"]
    assert conf.broker_url.startswith("rediss://:s3cret@")


def test_no_second_copy_of_records_in_celerys_result_backend():
    conf = make_app().conf
    assert conf.task_ignore_result and not conf.result_backend and not conf.result_extended


def test_the_broker_transport_survives_malformed_messages():
    assert make_app().conf.broker_transport == "tasks.broker:Transport"


def test_redis_passwords_are_redacted_for_messages():
    settings = QueueSettings(redis_url="redis://:s3cret@cache.example:6379/0")
    assert settings.redacted_url == "redis://:***@cache.example:6379/0"


SENTINELS = "sentinel://:s3cret@sentinel-a:26379/2;sentinel://:s3cret@sentinel-b:26379/2"


def test_sentinel_urls_select_kombus_sentinel_transport_with_the_master_name():
    conf = make_app(QueueSettings(redis_url=SENTINELS, sentinel_master="queue", sentinel_password="x")).conf
    assert conf.broker_transport == "tasks.broker:SentinelTransport"
    assert conf.broker_transport_options["master_name"] == "queue"
    assert conf.broker_transport_options["sentinel_kwargs"] == {"password": "x"}
    assert conf.broker_url == SENTINELS


def test_writes_wait_for_one_replica_behind_sentinel_and_for_none_otherwise():
    assert QueueSettings(redis_url=SENTINELS).replicas_needed == 1
    assert QueueSettings(redis_url="redis://h:6379/0").replicas_needed == 0
    assert QueueSettings(redis_url="redis://h:6379/0", replica_acks=2).replicas_needed == 2


def test_every_sentinels_password_is_redacted_and_urls_of_two_kinds_cannot_be_listed():
    assert QueueSettings(redis_url=SENTINELS).redacted_url == SENTINELS.replace("s3cret", "***")
    with pytest.raises(ValidationError, match="only sentinel:// URLs can be listed"):
        QueueSettings(redis_url="redis://a:6379/0;sentinel://b:26379")
    with pytest.raises(ValidationError, match="not amqp"):
        QueueSettings(redis_url="amqp://guest:guest@localhost:5672//")


def test_on_rabbitmq_a_producer_waits_for_confirms_and_a_worker_does_not():
    settings = QueueSettings(broker_url="amqp://guest:guest@localhost:5672//")
    assert make_app(settings).conf.broker_transport_options == {"confirm_publish": True}
    # a worker's only publishes are Flower's events, on a connection its consumer loop also reads
    assert make_app(settings, submits_jobs=False).conf.broker_transport_options == {"confirm_publish": False}
