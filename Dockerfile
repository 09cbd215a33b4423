# wangge API image (production users; `make demo` is the local path and needs no Docker).
FROM python:3.11-slim-bookworm AS web-assets
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WANGGE_MODE=prod
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY spatial ./spatial
COPY web ./web
COPY migrations ./migrations
COPY --from=web-assets /app/web/node_modules ./web/node_modules
RUN pip install --no-cache-dir . && useradd --system --uid 10001 wangge \
    && mkdir -p /var/lib/wangge/attachments && chown -R wangge /var/lib/wangge
USER wangge
EXPOSE 8000
# Migrate, then serve. WANGGE_DATABASE_URL must be set (prod mode refuses to start without it).
CMD ["sh", "-c", "wangge migrate && wangge serve --host 0.0.0.0 --port 8000 --workers ${WANGGE_WORKERS:-2}"]
