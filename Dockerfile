# Storykeep: one process, SQLite and a local key file under /data (the embedded default).
# Point STORYKEEP_DATABASE_URL at PostgreSQL to run several of these behind a load balancer.
#
#   docker build -t storykeep .
#   docker run -p 8000:8000 -v storykeep-data:/data \
#     -e STORYKEEP_SECRET_KEY=... -e STORYKEEP_ISSUER=https://storykeep.example.org storykeep
#
# The image runs with STORYKEEP_ENVIRONMENT=production, so it refuses to start with the
# placeholder secret key or a plain-http issuer. To try it on a laptop, add
# -e STORYKEEP_ENVIRONMENT=development.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STORYKEEP_ENVIRONMENT=production \
    STORYKEEP_DATA_DIR=/data

# A system user with no login shell and no home directory: the service owns /data only.
RUN groupadd --system --gid 10001 storykeep \
    && useradd --system --uid 10001 --gid storykeep --no-create-home \
       --shell /usr/sbin/nologin storykeep \
    && mkdir -p /data \
    && chown storykeep:storykeep /data \
    && chmod 0700 /data

WORKDIR /app
COPY . /app

# Editable on purpose: templates/, static/, migrations/ and alembic.ini are read from the
# source tree (PROJECT_ROOT is the parent of app/), so the code must run from /app.
# Dependency versions are bounded in pyproject.toml.
RUN pip install --no-cache-dir -e .

# Numeric, so the runtime can check it is not root without reading /etc/passwd.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Migrate (safe to repeat), then serve. exec hands signals straight to the server.
CMD ["sh", "-c", "storykeep db upgrade && exec storykeep serve --host 0.0.0.0 --port 8000"]
