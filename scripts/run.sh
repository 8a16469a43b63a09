#!/usr/bin/env bash
# `make run`: serve the helpdesk with daphne; with DATABASE_URL and REDIS_URL also run a Celery worker and Celery
# beat (the conversations' lifecycle pass every minute) beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py collectstatic --noinput -v 0
# The demo company's help center (English and Chinese markets), once: a new user's first questions get answers.
"$BIN/python" manage.py kb_import knowledge/demo --if-empty
# A month of sample conversations (site "Demo shop (sample history)"), once, so the reports have figures to show.
"$BIN/python" manage.py history_seed --if-empty
# Search terms of messages written before the console had a search (quick when there are none to fill).
"$BIN/python" manage.py search_reindex --if-needed
# Canned responses and fallback rules in English and Chinese, once: the console and the rule fallback start with some.
"$BIN/python" manage.py demo_seed --if-empty

worker=""
beat=""
stop() {
  trap - EXIT INT TERM
  [ -n "${web:-}" ] && kill -TERM "$web" 2>/dev/null || true
  [ -n "$beat" ] && kill -TERM "$beat" 2>/dev/null || true
  # SIGTERM to the worker's main process only: Celery drains running replies, then exits.
  [ -n "$worker" ] && kill -TERM "$worker" 2>/dev/null && wait "$worker" || true
}
trap stop EXIT INT TERM

if [ -n "${REDIS_URL:-}" ] && [ -n "${DATABASE_URL:-}" ]; then
  echo "Production shape: daphne + a Celery worker (threads pool) + Celery beat on $REDIS_URL"
  "$BIN/celery" -A helpdesk worker -P threads -c "${CELERY_CONCURRENCY:-8}" -l info &
  worker=$!
  mkdir -p var
  "$BIN/celery" -A helpdesk beat -l info -s var/celerybeat-schedule &
  beat=$!
else
  echo "Embedded defaults: SQLite in var/, in-memory channel layer, replies and the lifecycle pass in this process."
  # Replies to the helpdesk's emails come in over SMTP to this process (a separate receiver could not reach the
  # in-memory channel layer's open chats); emails are printed to this output (EMAIL_URL=consolemail://).
  export EMAIL_RECEIVE_PORT="${EMAIL_RECEIVE_PORT:-2525}"
  echo "Reply emails: SMTP on 127.0.0.1:$EMAIL_RECEIVE_PORT"
fi
# The links in emails (reopen a conversation, unsubscribe) point here unless set otherwise.
export HELPDESK_PUBLIC_URL="${HELPDESK_PUBLIC_URL:-http://$HOST:$PORT}"
echo
echo "  Helpdesk chat: http://$HOST:$PORT/    admin: http://$HOST:$PORT/admin/"
echo
# daphne with the project's timeouts (helpdesk/server.py): idle connections, handshakes, pings.
"$BIN/python" -m helpdesk.server -b "$HOST" -p "$PORT" helpdesk.asgi:application &
web=$!
wait "$web"
