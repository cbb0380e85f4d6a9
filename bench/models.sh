#!/usr/bin/env bash
# Silver and gold model benchmark: N bronze order rows (about 1.25 versions per order id) and
# 50,000 customers; times a dedup silver model (latest row per id) and a join + group-by gold
# model in Tributary (DataFusion), DuckDB and Polars on the same data, each writing Delta.
# Reports seconds and peak RSS (GNU time). Run by hand, not by CI:
#
#   bench/models.sh 5000000
#
# Installs GNU time and the Python packages (polars, duckdb, deltalake) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
N="${1:-5000000}"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
python3 -c "import polars, duckdb, deltalake" 2>/dev/null || pip install -q polars duckdb deltalake pyarrow
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/tributary"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
P="$WORK/project"
mkdir -p "$P/ingest" "$P/models/silver" "$P/models/gold"
python3 bench/models/gen.py "$N" "$P/landing"
cat >"$P/tributary.yaml" <<'YAML'
name: bench
lake: ./lake
connections:
  landing: { type: files, url: ./landing }
YAML
cat >"$P/ingest/landing.yaml" <<'YAML'
connection: landing
tables:
  - { name: orders, glob: "orders/*.parquet", format: parquet, target: bronze.orders }
  - { name: customers, glob: "customers/*.parquet", format: parquet, target: bronze.customers }
YAML
cat >"$P/models/silver/orders.sql" <<'SQL'
/*---
unique_key: id
order_by: updated_at
---*/
SELECT id, customer_id, status, total, currency, note, created_at, updated_at FROM {{ ref('bronze.orders') }}
SQL
cat >"$P/models/silver/orders_copy.sql" <<'SQL'
SELECT id, customer_id, status, total, currency, note, created_at, updated_at FROM {{ ref('bronze.orders') }}
SQL
cat >"$P/models/gold/revenue.sql" <<'SQL'
SELECT c.country, date_trunc('month', o.updated_at) AS month, count(*) AS orders, sum(o.total) AS revenue
FROM {{ ref('silver.orders') }} o JOIN {{ ref('bronze.customers') }} c ON c.id = o.customer_id
GROUP BY 1, 2
SQL
"$BIN" --project "$P" run --select 'bronze.*' >/dev/null

timed() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" >"$WORK/out.txt" 2>"$WORK/time.txt" || { cat "$WORK/out.txt" "$WORK/time.txt" >&2; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
  awk -v l="$label" -v s="$secs" -v r="$rss" 'BEGIN { printf "| %s | %.2f | %.0f |\n", l, s, r/1024 }'
}

echo "| step (N=$N) | seconds | peak RSS MiB |"
echo "|---|---:|---:|"
timed "read + rewrite only: Tributary (no dedup)" "$BIN" --project "$P" run --select silver.orders_copy
timed "silver dedup: Tributary" "$BIN" --project "$P" run --select silver.orders
timed "silver dedup: DuckDB" python3 bench/models/peers.py duckdb silver "$P/lake"
timed "silver dedup: Polars" python3 bench/models/peers.py polars silver "$P/lake"
timed "gold join+group: Tributary" "$BIN" --project "$P" run --select gold.revenue
timed "gold join+group: DuckDB" python3 bench/models/peers.py duckdb gold "$P/lake"
timed "gold join+group: Polars" python3 bench/models/peers.py polars gold "$P/lake"
rows() { "$BIN" --project "$P" query --format csv "$1" | tail -1; }
echo
echo "silver rows: tributary $(rows 'SELECT count(*) FROM silver.orders'), duckdb $(rows 'SELECT count(*) FROM peer_duckdb.silver'), polars $(rows 'SELECT count(*) FROM peer_polars.silver')"
