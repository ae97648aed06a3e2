# tourapi API image. Build context: the repository root.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TOURAPI_FIXTURES_PATH=/app/fixtures/suzhou
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app tourapi
COPY pyproject.toml README.md ./
COPY tourapi ./tourapi
COPY fixtures ./fixtures
RUN pip install . && chown -R tourapi /app
USER tourapi
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["tourapi", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
