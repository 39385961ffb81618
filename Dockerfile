# The hub image used by docker-compose.yml (production shape).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY hub ./hub
COPY consent ./consent
COPY connectors ./connectors
COPY schemas ./schemas
COPY migrations ./migrations
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 kinfolio
USER kinfolio
EXPOSE 8000
CMD ["kinfolio", "serve"]
