# A worker image: igneous-like is the entrypoint, so `docker run IMAGE -p 1 execute sqs://QUEUE_NAME`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

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
ENTRYPOINT ["igneous-like"]
CMD ["execute", "--help"]
