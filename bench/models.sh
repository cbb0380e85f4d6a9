#!/usr/bin/env bash
# Silver and gold model benchmark: N bronze order rows (about 1.25 versions per order id) and
# 50,000 customers; times a dedup silver model (latest row per id) and a join + group-by gold
# model in Tributary (DataFusion), DuckDB and Polars on the same data, each writing Delta; also
# Tributary rewriting the rows without dedup (the floor) and deduplicating with a ROW_NUMBER()
# window written in the model's SQL (the plan `unique_key` used before).
# Reports the median of R runs (default 3) of each step: wall seconds and peak RSS (GNU time),
# and rows/s (input rows of the step: N for silver, the deduplicated rows for gold).
# Run by hand, not by CI:
#
#   bench/models.sh 5000000 [R]
#
# Installs GNU time and the Python packages (polars, duckdb, deltalake) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
N="${1:-5000000}"
R="${2:-3}"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
python3 -c "import polars, duckdb, deltalake" 2>/dev/null || pip install -q polars duckdb deltalake pyarrow
cargo build --release --workspace --all-targets -q
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
cat >"$P/models/silver/orders_window.sql" <<'SQL'
SELECT id, customer_id, status, total, currency, note, created_at, updated_at FROM (
  SELECT id, customer_id, status, total, currency, note, created_at, updated_at,
         ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST) AS rn
  FROM {{ ref('bronze.orders') }}) WHERE rn = 1
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

timed() { # label, command... -> one line "label<TAB>seconds<TAB>peak RSS KiB" in $WORK/times.tsv
  local label=$1; shift
  /usr/bin/time -v "$@" >"$WORK/out.txt" 2>"$WORK/time.txt" || { cat "$WORK/out.txt" "$WORK/time.txt" >&2; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
  printf '%s\t%s\t%s\n' "$label" "$secs" "$rss" >>"$WORK/times.tsv"
}
rows() { "$BIN" --project "$P" query --format csv "$1" | tail -1; }

echo "load before: $(uptime)"
: >"$WORK/times.tsv"
for _ in $(seq "$R"); do
  timed "read + rewrite only: Tributary (no dedup)" "$BIN" --project "$P" run --select silver.orders_copy
  timed "silver dedup: Tributary" "$BIN" --project "$P" run --select silver.orders
  timed "silver dedup: Tributary, ROW_NUMBER window (the previous plan)" "$BIN" --project "$P" run --select silver.orders_window
  timed "silver dedup: DuckDB" python3 bench/models/peers.py duckdb silver "$P/lake"
  timed "silver dedup: Polars" python3 bench/models/peers.py polars silver "$P/lake"
  timed "gold join+group: Tributary" "$BIN" --project "$P" run --select gold.revenue
  timed "gold join+group: DuckDB" python3 bench/models/peers.py duckdb gold "$P/lake"
  timed "gold join+group: Polars" python3 bench/models/peers.py polars gold "$P/lake"
done
echo "load after: $(uptime)"
SILVER=$(rows 'SELECT count(*) FROM silver.orders')
echo "silver rows: tributary $SILVER, duckdb $(rows 'SELECT count(*) FROM peer_duckdb.silver'), polars $(rows 'SELECT count(*) FROM peer_polars.silver')"
echo "gold rows: tributary $(rows 'SELECT count(*) FROM gold.revenue'), duckdb $(rows 'SELECT count(*) FROM peer_duckdb.gold'), polars $(rows 'SELECT count(*) FROM peer_polars.gold')"
echo
python3 - "$WORK/times.tsv" "$N" "$SILVER" "$R" <<'PY'
import statistics, sys
path, n, silver, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
by = {}
for line in open(path):
    label, secs, rss = line.rstrip("\n").split("\t")
    by.setdefault(label, []).append((float(secs), int(rss)))
print(f"| step (N={n:,}, median of {runs}) | seconds | peak RSS MiB | rows/s |")
print("|---|---:|---:|---:|")
for label, xs in by.items():
    s = statistics.median(x[0] for x in xs)
    r = statistics.median(x[1] for x in xs) / 1024
    rows_in = silver if label.startswith("gold") else n
    print(f"| {label} | {s:.2f} | {r:.0f} | {rows_in / s:,.0f} |")
PY
