#!/usr/bin/env bash
# Bronze load benchmark: generates an `orders` table of N rows in PostgreSQL and in MariaDB, runs
# `tributary run` on it (a full load into a local Delta lake), and reports rows/s, MB/s of source
# size and peak RSS (from /usr/bin/time -v). Run by hand, not by CI:
#
#   bench/bronze_load.sh 1000000 5000000      # row counts to measure (default: 1M and 5M)
#
# Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306,
# root); installs GNU time if missing. Results go to stdout as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 5000000)
command -v /usr/bin/time >/dev/null 2>&1 || [ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/tributary"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

PSQL=(psql -h 127.0.0.1 -U postgres -d test -qAt -v ON_ERROR_STOP=1)
MYSQL=(mariadb -h 127.0.0.1 -u root -N -B)

gen_pg() {
  local n=$1
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
    CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
      total numeric(12,2), currency char(3), note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO bench.orders SELECT g, (g * 7919) % 50000, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
      ((g * 31) % 100000) / 100.0, 'EUR', CASE WHEN g % 10 = 0 THEN NULL ELSE 'order note ' || g END,
      timestamptz '2026-01-01' + g * interval '1 second', timestamptz '2026-01-01' + g * interval '1 second' + interval '1 hour'
      FROM generate_series(1::bigint, $n) g;" -c "VACUUM ANALYZE bench.orders"
  "${PSQL[@]}" -c "SELECT pg_table_size('bench.orders')"
}

gen_my() {
  local n=$1
  "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench; USE bench;
    CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status varchar(16) NOT NULL,
      total decimal(12,2), currency char(3), note text, created_at timestamp(6) NOT NULL, updated_at datetime(6) NOT NULL);
    INSERT INTO bench.orders
      SELECT seq, (seq * 7919) % 50000, ELT(1 + seq % 4, 'new','paid','shipped','returned'), ((seq * 31) % 100000) / 100.0, 'EUR',
        IF(seq % 10 = 0, NULL, CONCAT('order note ', seq)),
        TIMESTAMPADD(SECOND, seq, '2026-01-01'), TIMESTAMPADD(SECOND, seq + 3600, '2026-01-01')
      FROM seq_1_to_$n;
    ANALYZE TABLE bench.orders;" >/dev/null
  "${MYSQL[@]}" -e "SELECT data_length FROM information_schema.tables WHERE table_schema='bench' AND table_name='orders'"
}

measure() {
  local kind=$1 url=$2 n=$3 bytes=$4 table=$5
  local proj="$WORK/$kind-$n"
  mkdir -p "$proj/ingest"
  printf 'name: bench\nlake: ./lake\nconnections:\n  src: { type: %s, url: "%s" }\n' "$kind" "$url" >"$proj/tributary.yaml"
  printf 'connection: src\ntables:\n  - name: %s\n' "$table" >"$proj/ingest/src.yaml"
  /usr/bin/time -v "$BIN" --project "$proj" run >"$proj/out.txt" 2>"$proj/time.txt"
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$proj/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$proj/time.txt")
  local loaded
  loaded=$("$BIN" --project "$proj" query --format csv "SELECT count(*) FROM bronze.src_orders" | tail -1)
  [ "$loaded" = "$n" ] || { echo "loaded $loaded rows, expected $n" >&2; exit 1; }
  awk -v k="$kind" -v n="$n" -v s="$secs" -v b="$bytes" -v r="$rss" \
    'BEGIN { printf "| %s | %d | %.1f | %.0f | %.1f | %.0f |\n", k, n, s, n/s, b/1048576/s, r/1024 }'
  rm -rf "$proj/lake"
}

echo "| source | rows | seconds | rows/s | source MB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${SIZES[@]}"; do
  bytes=$(gen_pg "$n" | tail -1)
  measure postgres "postgres://postgres@127.0.0.1:5432/test" "$n" "$bytes" bench.orders
  bytes=$(gen_my "$n" | tail -1)
  measure mysql "mysql://root@127.0.0.1:3306/bench" "$n" "$bytes" orders
done
"${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench CASCADE"
"${MYSQL[@]}" -e "DROP DATABASE IF EXISTS bench"
