# tradedb as a container: runs migrations by default (a Kubernetes Job), or any tradedb command.
# Build: docker build -t tradedb:0.1.0 .   Run: docker run --rm -e DATABASE_URL=... tradedb:0.1.0
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# pg_dump/pg_restore for `tradedb backup` (PostgreSQL's client tools; no server in the image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --create-home tradedb
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /app
ENV PYTHONUNBUFFERED=1 TRADEDB_PROFILE=production
ENTRYPOINT ["tradedb"]
CMD ["migrate", "upgrade"]
