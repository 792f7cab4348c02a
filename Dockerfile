# A worker image: `igneous-like execute` is the entrypoint; the queue, lease and worker processes
# come from the environment:
#   docker run -e IGNEOUS_LIKE_QUEUE=sqs://QUEUE_NAME -e IGNEOUS_LIKE_LEASE_SEC=600 IMAGE
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IGNEOUS_LIKE_LEASE_SEC=600 \
    IGNEOUS_LIKE_PARALLEL=1

RUN useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin worker

WORKDIR /opt/igneous_like
# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY setup.py README.md requirements-test.txt ./
COPY igneous_like ./igneous_like
RUN pip install --no-cache-dir --no-deps . \
    && igneous-like --version

USER 1000:1000
WORKDIR /home/worker
ENTRYPOINT ["igneous-like", "execute"]
