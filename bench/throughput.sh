#!/usr/bin/env bash
# Throughput benchmark: a full load of an `orders` table from PostgreSQL and from MariaDB into a
# local Delta table, Tributary next to the server-side floor (the server producing the rows with
# no real client) and peer tools (ConnectorX + delta-rs, Polars, dlt). Run by hand, not by CI:
#
#   bench/throughput.sh [ROWS...]                  # default: 1000000 5000000 (50000000 works)
#   REPS=5 bench/throughput.sh 1000000             # repetitions per tool (default 3); medians are reported
#   TOOLS="floor tributary connectorx" bench/throughput.sh 1000000    # a subset (glob patterns)
#   TRIBUTARY_BIN=path/to/tributary bench/throughput.sh              # skip the cargo build
#
# TOOLS names (default: all): floor, tributary, tributary-p2, tributary-zstd, tributary-snappy,
# connectorx, connectorx-p2, connectorx-stream, polars, dlt. Each word is a shell glob, so
# TOOLS="floor tributary*" selects the floors and every Tributary variant.
#
# Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres, database test) and MariaDB
# (127.0.0.1:3306, root, no password). Installs GNU time if missing, and the peers from PyPI into
# a virtualenv outside the repo ($HOME/.cache/tributary/bench-venv) if missing. Every tool runs
# once per repetition, interleaved (rep 1: every tool, rep 2: every tool, …) on the same table,
# each into a fresh folder, and every result's row count is checked. Output: Markdown on stdout
# (machine, versions, one table per source and size), ready for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 5000000)
REPS="${REPS:-3}"
TOOLS="${TOOLS:-*}"
VENV="$HOME/.cache/tributary/bench-venv"
PY="$VENV/bin/python"
HERE=bench/throughput
ALL_TOOLS=(floor tributary tributary-p2 tributary-zstd tributary-snappy connectorx connectorx-p2 connectorx-stream polars dlt)

# --- Tools -------------------------------------------------------------------------------------

# selected TOOL: whether TOOLS selects it (each word of TOOLS is a glob pattern).
selected() {
  local pattern patterns
  read -ra patterns <<<"$TOOLS" # split on blanks, no pathname expansion
  for pattern in "${patterns[@]}"; do
    # shellcheck disable=SC2053 # the pattern is meant as a glob
    [[ $1 == $pattern ]] && return 0
  done
  return 1
}
SELECTED=()
for t in "${ALL_TOOLS[@]}"; do
  if selected "$t"; then SELECTED+=("$t"); fi
done
[ ${#SELECTED[@]} -gt 0 ] || { echo "TOOLS='$TOOLS' selects none of: ${ALL_TOOLS[*]}" >&2; exit 2; }

# GNU time for wall time and peak RSS (as bronze_load.sh).
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

# The peers, in a virtualenv of their own (only created / installed when an import fails).
# dlt's sql_database source reflects the table with SQLAlchemy, which needs psycopg2 / PyMySQL;
# its connectorx backend needs connectorx.
if ! "$PY" -c "import connectorx, deltalake, polars, pyarrow, dlt, sqlalchemy, psycopg2, pymysql" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q connectorx deltalake polars pyarrow "dlt[deltalake,sql-database]" psycopg2-binary pymysql >&2
fi
export RUNTIME__DLTHUB_TELEMETRY=false # dlt: no telemetry (this machine has no network anyway)

# Tributary: the given binary, or a release build like bronze_load.sh (only when a Tributary
# line is selected).
BIN="${TRIBUTARY_BIN:-$CARGO_TARGET_DIR/release/tributary}"
if [[ " ${SELECTED[*]} " == *" tributary"* ]]; then
  if [ -z "${TRIBUTARY_BIN:-}" ]; then
    cargo build --release -q
  fi
  [ -x "$BIN" ] || { echo "no Tributary binary at $BIN" >&2; exit 2; }
fi
# The binary's identity, to warn if a build replaces it while the benchmark runs.
bin_stamp() { stat -c '%s %Y' "$BIN" 2>/dev/null || true; }
BIN_STAMP=$(bin_stamp)

WORK=$(mktemp -d)
PSQL=(psql -h 127.0.0.1 -U postgres -d test -X -qAt -v ON_ERROR_STOP=1)
MYSQL=(mariadb -h 127.0.0.1 -u root -N -B)
cleanup() {
  rm -rf "$WORK"
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench CASCADE" 2>/dev/null || true
  "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS bench" 2>/dev/null || true
}
trap cleanup EXIT

# --- Source tables -----------------------------------------------------------------------------
# The same rows in both: 10 % NULL notes, microsecond timestamps (UTC), 5 statuses, 3 currencies.

gen_pg() { # N -> prints pg_table_size (heap + TOAST + maps, no index)
  local n=$1
  "${PSQL[@]}" -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
    CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
      status varchar(16) NOT NULL, total numeric(12,2) NOT NULL, currency char(3) NOT NULL,
      created_at timestamptz NOT NULL, note text, paid boolean NOT NULL);
    INSERT INTO bench.orders
      SELECT g, (g * 7919) % 50000, date '2025-01-01' + (g % 730)::int,
        (ARRAY['new','paid','shipped','returned','cancelled'])[1 + g % 5], ((g * 31) % 1000000) / 100.0,
        (ARRAY['EUR','USD','GBP'])[1 + g % 3],
        timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' + (g % 1000000) * interval '1 microsecond',
        CASE WHEN g % 10 = 0 THEN NULL ELSE 'order note ' || g END, g % 3 <> 0
      FROM generate_series(1::bigint, $n) g;" -c "VACUUM ANALYZE bench.orders"
  "${PSQL[@]}" -c "SELECT pg_table_size('bench.orders')"
}

gen_my() { # N -> prints InnoDB data_length (the clustered index: the rows)
  local n=$1
  "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench; USE bench; SET time_zone = '+00:00';
    CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
      status varchar(16) NOT NULL, total decimal(12,2) NOT NULL, currency char(3) NOT NULL,
      created_at timestamp(6) NOT NULL, note text, paid boolean NOT NULL) ENGINE=InnoDB;
    INSERT INTO bench.orders
      SELECT seq, (seq * 7919) % 50000, DATE_ADD('2025-01-01', INTERVAL seq % 730 DAY),
        ELT(1 + seq % 5, 'new','paid','shipped','returned','cancelled'), ((seq * 31) % 1000000) / 100.0,
        ELT(1 + seq % 3, 'EUR','USD','GBP'),
        TIMESTAMPADD(MICROSECOND, seq * 1000000 + seq % 1000000, '2025-01-01 00:00:00'),
        IF(seq % 10 = 0, NULL, CONCAT('order note ', seq)), seq % 3 <> 0
      FROM seq_1_to_$n;
    ANALYZE TABLE bench.orders;" >/dev/null
  "${MYSQL[@]}" -e "SELECT data_length FROM information_schema.tables WHERE table_schema='bench' AND table_name='orders'"
}

# --- Measuring ---------------------------------------------------------------------------------
# Each run appends one line to $WORK/results.tsv:
#   rows, source, label, kind, rep, ok|failed, wall seconds, peak RSS KiB, Delta data bytes, message
# kind: floor (the ratios' reference), floor-ref (another floor line), tributary, peer.

CUR_N=0 CUR_SOURCE="" CUR_REP=0
record() { # label kind status secs rss message [Delta data bytes]
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CUR_N" "$CUR_SOURCE" "$1" "$2" "$CUR_REP" "$3" "$4" "$5" "${7:-}" "$6" >>"$WORK/results.tsv"
  grep -qxF -- "$1" "$WORK/order.txt" 2>/dev/null || echo "$1" >>"$WORK/order.txt"
  if [ "$3" = ok ]; then
    printf '  %-40s %8.2f s %7d MiB\n' "$1" "$4" "$(($5 / 1024))" >&2
  else
    printf '  %-40s FAILED: %s\n' "$1" "$6" >&2
  fi
}

# inspect LABEL DELTA_PATH: reads a written Delta table back with the Python deltalake package
# (not timed): sets LOADED (rows) and BYTES (data files), and notes its codecs and column types
# for the report.
LOADED="" BYTES=""
inspect() {
  local check
  check=$("$PY" "$HERE/peers.py" count "$2" 2>&1) || true
  LOADED=$(sed -n 1p <<<"$check")
  BYTES=$(sed -n 2p <<<"$check")
  printf '%s\t%s\t%s\t%s\n' "$CUR_SOURCE" "$1" "$(sed -n 3p <<<"$check")" "$(sed -n 4p <<<"$check")" >>"$WORK/schemas.tsv"
}

# timed OUT_PREFIX command... : runs the command under GNU time (its report in OUT_PREFIX.time,
# the command's stdout and stderr in OUT_PREFIX.out / .err); sets SECS, RSS and returns its status.
SECS=0 RSS=0
timed() {
  local out=$1
  shift
  local status=0
  /usr/bin/time -v -o "$out.time" "$@" >"$out.out" 2>"$out.err" || status=$?
  SECS=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out.time")
  RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out.time")
  return "$status"
}

# why OUT_PREFIX: a one-line reason for a failure, from the command's output (error lines first).
why() {
  local lines
  lines=$(cat "$1.err" "$1.out" 2>/dev/null | grep -v '^\s*$' | tr -d '\r' || true)
  { grep -iE 'error|exception|unknown|invalid' <<<"$lines" || tail -n 3 <<<"$lines"; } |
    tail -n 3 | tr '\t\n' '  ' | sed 's/  */ /g; s/ $//' | cut -c1-300
}

# Floors: the server sends every row and nothing is kept. Their wall time is psql's / mariadb's
# whole process (start, connect, query); their RSS is the client's only, not the server's.
run_floor() {
  local out="$WORK/run" n=$CUR_N
  if [ "$CUR_SOURCE" = postgres ]; then
    # The server writes binary COPY to its own /dev/null: no bytes leave it. psql's \timing gives
    # the statement's time without process start and connection, as a second line.
    if timed "$out" psql -h 127.0.0.1 -U postgres -d test -X -v ON_ERROR_STOP=1 \
      -c '\timing on' -c "COPY (SELECT * FROM bench.orders) TO '/dev/null' (FORMAT binary)" &&
      grep -qx "COPY $n" "$out.out"; then
      record "floor: COPY TO '/dev/null' (server)" floor ok "$SECS" "$RSS" ""
      local ms
      ms=$(awk '/^Time: / {print $2}' "$out.out")
      record "floor: same, psql \\timing of the COPY" floor-ref ok "$(awk -v m="$ms" 'BEGIN {print m/1000}')" 0 ""
    else
      record "floor: COPY TO '/dev/null' (server)" floor failed 0 0 "$(why "$out")"
    fi
    # The same binary stream sent to psql, which writes it to /dev/null.
    if timed "$out" bash -c "psql -h 127.0.0.1 -U postgres -d test -X -v ON_ERROR_STOP=1 \
        -c '\\copy (SELECT * FROM bench.orders) TO STDOUT (FORMAT binary)' >/dev/null"; then
      record "floor: \\copy TO STDOUT > /dev/null (psql)" floor-ref ok "$SECS" "$RSS" ""
    else
      record "floor: \\copy TO STDOUT > /dev/null (psql)" floor-ref failed 0 0 "$(why "$out")"
    fi
  else
    # The text protocol, row by row (--quick: no client-side buffering), tab-separated to /dev/null.
    if timed "$out" bash -c 'mariadb -h 127.0.0.1 -u root --quick -e "SELECT * FROM bench.orders" >/dev/null'; then
      record "floor: mariadb --quick > /dev/null" floor ok "$SECS" "$RSS" ""
    else
      record "floor: mariadb --quick > /dev/null" floor failed 0 0 "$(why "$out")"
    fi
  fi
}

# Tributary: a fresh project per run (lake and state store empty), `tributary run`, then the
# loaded row count through `tributary query` (and the Delta table read back like the peers').
run_tributary() { # variant
  local variant=$1 n=$CUR_N
  local proj="$WORK/proj-$variant" out="$WORK/run"
  rm -rf "$proj"
  mkdir -p "$proj/ingest"
  local kind=$CUR_SOURCE url table
  if [ "$kind" = postgres ]; then
    url="postgres://postgres@127.0.0.1:5432/test" table=bench.orders
  else
    url="mysql://root@127.0.0.1:3306/bench" table=orders
  fi
  {
    printf 'name: bench\nlake: ./lake\nconnections:\n  src: { type: %s, url: "%s" }\n' "$kind" "$url"
    case $variant in
      tributary-zstd) echo 'writer: { compression: zstd(1) }' ;;
      tributary-snappy) echo 'writer: { compression: snappy }' ;;
    esac
  } >"$proj/tributary.yaml"
  {
    printf 'connection: src\ntables:\n  - name: %s\n    mode: full\n' "$table"
    if [ "$variant" = tributary-p2 ]; then echo '    parallel: { column: id, partitions: 2 }'; fi
  } >"$proj/ingest/src.yaml"
  if ! timed "$out" "$BIN" --project "$proj" run; then
    record "$variant" tributary failed 0 0 "$(why "$out")"
    return
  fi
  local loaded
  loaded=$("$BIN" --project "$proj" query --format csv "SELECT count(*) FROM bronze.src_orders" 2>&1 | tail -1)
  inspect "$variant" "$proj/lake/bronze/src_orders"
  if [ "$loaded" = "$n" ] && [ "$LOADED" = "$n" ]; then
    record "$variant" tributary ok "$SECS" "$RSS" "" "$BYTES"
  else
    record "$variant" tributary failed 0 0 "loaded $loaded rows (tributary query), $LOADED (deltalake), expected $n"
  fi
  rm -rf "$proj"
}

# Peers: bench/throughput/peers.py writes a Delta table into a fresh folder and prints its path;
# the row count is then read back with the Python deltalake package (not timed).
run_peer() { # tool
  local tool=$1 n=$CUR_N
  local dir="$WORK/peer-$tool" out="$WORK/run"
  rm -rf "$dir"
  if ! timed "$out" "$PY" "$HERE/peers.py" "$tool" "$CUR_SOURCE" "$dir"; then
    record "$tool" peer failed 0 0 "$(why "$out")"
    rm -rf "$dir"
    return
  fi
  inspect "$tool" "$(tail -1 "$out.out")"
  if [ "$LOADED" = "$n" ]; then
    record "$tool" peer ok "$SECS" "$RSS" "" "$BYTES"
  else
    record "$tool" peer failed 0 0 "loaded $LOADED rows, expected $n"
  fi
  rm -rf "$dir"
}

run_tool() {
  case $1 in
    floor) run_floor ;;
    tributary*) run_tributary "$1" ;;
    *) run_peer "$1" ;;
  esac
}

# --- The benchmark -----------------------------------------------------------------------------

: >"$WORK/results.tsv"
: >"$WORK/sizes.tsv"
: >"$WORK/schemas.tsv"
: >"$WORK/load.txt"
LOAD_START=$(uptime) # before anything of the benchmark: shows whether something else is running
for n in "${SIZES[@]}"; do
  echo "generating $n rows ..." >&2
  printf '%s\tpostgres\t%s\n' "$n" "$(gen_pg "$n" | tail -1)" >>"$WORK/sizes.tsv"
  printf '%s\tmysql\t%s\n' "$n" "$(gen_my "$n" | tail -1)" >>"$WORK/sizes.tsv"
  # Warm-up, not recorded: one floor read of each table, so the first timed tool does not pay
  # for cold caches (MariaDB's buffer pool is smaller than the table; both rely on the page cache).
  "${PSQL[@]}" -c "COPY (SELECT * FROM bench.orders) TO '/dev/null' (FORMAT binary)" >/dev/null
  mariadb -h 127.0.0.1 -u root --quick -e "SELECT * FROM bench.orders" >/dev/null
  before=$(uptime)
  for rep in $(seq "$REPS"); do
    for source in postgres mysql; do
      echo "rows $n, rep $rep/$REPS, $source:" >&2
      CUR_N=$n CUR_SOURCE=$source CUR_REP=$rep
      for tool in "${SELECTED[@]}"; do run_tool "$tool"; done
    done
  done
  after=$(uptime)
  echo "${before##*load average: } before the timed runs of $n rows (after generating them), ${after##*load average: } after" >>"$WORK/load.txt"
done

# --- Report ------------------------------------------------------------------------------------

commit=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] || commit="$commit (with uncommitted changes in the work tree)"
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
echo "## Throughput: PostgreSQL and MariaDB → local Delta table"
echo
echo "\`bench/throughput.sh ${SIZES[*]}\` with REPS=$REPS, TOOLS=\"${TOOLS}\", $(date -u +%Y-%m-%d)."
echo
echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $mem RAM"
echo "- PostgreSQL $("${PSQL[@]}" -c 'SHOW server_version'), MariaDB $("${MYSQL[@]}" -e 'SELECT version()')"
if [ -x "$BIN" ]; then
  echo "- Tributary: $("$BIN" --version 2>&1 | head -1) ($BIN), repo commit $commit"
  if [ "$(bin_stamp)" != "$BIN_STAMP" ]; then
    echo "- **Warning: $BIN was replaced (rebuilt) during the benchmark: later Tributary runs used another binary, and a build competed for the CPUs.**"
  fi
else
  echo "- Repo commit $commit (no Tributary line run)"
fi
echo "- Peers (PyPI, $("$PY" --version 2>&1)): $("$PY" "$HERE/peers.py" versions | paste -sd, - | sed 's/,/, /g')"
echo "- Load average (1, 5, 15 min): ${LOAD_START##*load average: } at the start; $(paste -sd';' "$WORK/load.txt" | sed 's/;/; /g')"
echo
python3 "$HERE/report.py" "$WORK/results.tsv" "$WORK/sizes.tsv" "$WORK/order.txt" "$WORK/schemas.tsv" "${SELECTED[*]}"
