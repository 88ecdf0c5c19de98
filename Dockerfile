# The one image every process runs from; the command picks the process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY fulfillment ./fulfillment
COPY api ./api
COPY cli ./cli
COPY workers ./workers
COPY pipelines ./pipelines
COPY integrations ./integrations
COPY monitoring ./monitoring
RUN pip install . && useradd --system --uid 10001 app
USER app

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
CMD ["fulfillment", "api", "--host", "0.0.0.0", "--port", "8080"]
