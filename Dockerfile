# AdBot image: API, Celery worker/beat/flower, migrations and the MLflow server share it.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# The CPU build of PyTorch first: the default index would pull a multi-gigabyte CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .
COPY alembic.ini ./
COPY migrations ./migrations
COPY configs ./configs
RUN useradd --create-home adbot && mkdir -p /app/data && chown adbot /app/data
# site-packages is read-only for the adbot user: numba caches its compiled kernels here.
ENV NUMBA_CACHE_DIR=/app/data/numba-cache
USER adbot
EXPOSE 7502
CMD ["adbot", "serve"]
