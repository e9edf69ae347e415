# callrouter: SIP registrar/B2BUA, IVR and provisioning API in one process.
#   docker build -t callrouter .
#   docker run -p 5060:5060/udp -p 5060:5060/tcp -p 5061:5061 -p 8080:8080 callrouter
# docker-compose.yml runs it with PostgreSQL and Redis instead of the built-in SQLite store.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# zoneinfo needs the IANA database to check the time zones in organisation files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/callrouter
COPY pyproject.toml README.md ./
COPY callrouter ./callrouter
COPY sipcore ./sipcore
COPY routing ./routing
COPY ivr ./ivr
COPY provisioning ./provisioning
# Editable, so that data folders next to the code (the IVR's prompts/, when it lands) are
# found as in a checkout.
RUN pip install -e .

# The settings use paths relative to their own folder (store at ../var/callrouter.db). With
# /etc/callrouter a link to /opt/callrouter/config those land in /opt/callrouter/var, as in
# a checkout; mounting another file at /etc/callrouter/callrouter.yaml replaces the settings.
COPY config/callrouter.yaml config/example-org.yaml ./config/
RUN ln -s /opt/callrouter/config /etc/callrouter \
    && useradd --system --home-dir /opt/callrouter --shell /usr/sbin/nologin callrouter \
    && mkdir -p /opt/callrouter/var \
    && chown callrouter /opt/callrouter/var
VOLUME /opt/callrouter/var
USER callrouter

# SIP over UDP and TCP, SIP over TLS, the API, and the RTP range of config/callrouter.yaml.
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp 20000-30000/udp

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

CMD ["callrouter", "serve", "--config", "/etc/callrouter/callrouter.yaml"]
