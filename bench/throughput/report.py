"""Markdown tables of bench/throughput.sh: one per source and size, medians over the repetitions.

    python3 report.py RESULTS_TSV SIZES_TSV TOOL_ORDER SCHEMAS_TSV "SELECTED TOOLS"

RESULTS_TSV lines: rows, source, label, kind, rep, status (ok|failed), seconds, peak RSS KiB,
Delta data bytes, message.
`kind` is floor, floor-ref (a floor line that is not the ratio's reference), tributary or peer.
SIZES_TSV lines: rows, source, source bytes. TOOL_ORDER: the labels in the order they ran.
SCHEMAS_TSV lines: source, label, Parquet codecs and Arrow schema of the Delta table it wrote.
"""

import statistics
import sys

results_path, sizes_path, order_path, schemas_path = sys.argv[1:5]
selected = sys.argv[5].split()

# What each selectable tool's lines measure.
LINES = {
    "floor": [
        "floor: COPY TO '/dev/null' (server): psql (superuser) runs `COPY (SELECT * FROM bench.orders) "
        "TO '/dev/null' (FORMAT binary)`: the server encodes the binary COPY stream and writes it to "
        "its own /dev/null, no client reads it; wall time of the psql process. *same, psql \\timing*: "
        "that statement's time as psql's `\\timing` reports it (no process start, no connect). "
        "*\\copy TO STDOUT > /dev/null (psql)*: `psql -c \"\\copy (SELECT * FROM bench.orders) TO STDOUT "
        "(FORMAT binary)\" > /dev/null`, the same stream sent to psql.",
        "floor: mariadb --quick: `mariadb --quick -e \"SELECT * FROM bench.orders\" > /dev/null` "
        "(text protocol, row by row, printed tab-separated).",
    ],
    "tributary": [
        "tributary: `tributary run` of a new project with the table in `mode: full` and every default "
        "(writer, batch size, parallelism), into `lake: ./lake`; rows counted with `tributary query`."
    ],
    "tributary-p2": ["tributary-p2: the same with `parallel: { column: id, partitions: 2 }` on the table."],
    "tributary-zstd": ["tributary-zstd: the same with `writer: { compression: zstd(1) }` in tributary.yaml."],
    "tributary-snappy": ["tributary-snappy: the same with `writer: { compression: snappy }` in tributary.yaml."],
    "connectorx": [
        "connectorx: `connectorx.read_sql(url, \"SELECT * FROM …\", return_type=\"arrow\")` (the whole "
        "table in memory), then `deltalake.write_deltalake(path, table)`."
    ],
    "connectorx-p2": ["connectorx-p2: the same with `partition_on=\"id\", partition_num=2` (two connections)."],
    "connectorx-stream": [
        "connectorx-stream: `return_type=\"arrow_stream\", batch_size=10000` (a RecordBatchReader), "
        "written by `write_deltalake` as it is read."
    ],
    "polars": [
        "polars: `pl.read_database_uri(query, url, engine=\"connectorx\")`, then `DataFrame.write_delta(path)`."
    ],
    "dlt": [
        "dlt: `sql_table(…, backend=\"connectorx\")` run by a new pipeline (its own pipelines_dir) into "
        "the `filesystem` destination (a local bucket_url) with `table_format=\"delta\"`, "
        "`write_disposition=\"replace\"`: extract to Parquet, normalize, load as a Delta table."
    ],
}

print(
    """Wall seconds: GNU time's elapsed time of the whole command (process start, imports, connect,
read, write, commit). rows/s and source MB/s (MB = 2^20 bytes of pg_table_size / InnoDB
data_length, as in bronze_load.sh) divide by the median. × floor: a Tributary line's median over
the floor's (PostgreSQL: COPY TO '/dev/null'; MariaDB: mariadb --quick); × fastest peer: over the
fastest line that is neither a floor nor Tributary (below 1: Tributary is faster). Peak RSS: GNU
time's maximum resident set size; a floor's is its client's (psql, mariadb), not the server's.
Delta MB: the data files of the table written (2^20 bytes).

Lines (every run writes to a new folder; each loaded table's row count is checked, a run whose
count is wrong counts as failed):
"""
)
for tool in selected:
    for line in LINES.get(tool, []):
        print(f"- {line}")
print()
order = [line.rstrip("\n") for line in open(order_path) if line.strip()]
sizes = {}
for line in open(sizes_path):
    n, source, size = line.rstrip("\n").split("\t")
    sizes[(int(n), source)] = int(size)

runs = {}  # (rows, source) -> label -> list of runs
kinds = {}
for line in open(results_path):
    n, source, label, kind, rep, status, secs, rss, out, message = line.rstrip("\n").split("\t")
    kinds[label] = kind
    runs.setdefault((int(n), source), {}).setdefault(label, []).append(
        {
            "ok": status == "ok",
            "secs": float(secs or 0),
            "rss": int(rss or 0),
            "out": int(out or 0),
            "message": message,
        }
    )

NAMES = {"postgres": "PostgreSQL", "mysql": "MariaDB"}


def median_secs(rs):
    ok = [r["secs"] for r in rs if r["ok"]]
    return statistics.median(ok) if ok else None


for (n, source) in sorted(runs, key=lambda k: (k[0], k[1] != "postgres")):
    by_label = runs[(n, source)]
    size = sizes[(n, source)]
    medians = {label: median_secs(rs) for label, rs in by_label.items()}
    floor = next((medians[l] for l in by_label if kinds[l] == "floor" and medians[l]), None)
    peers = [(medians[l], l) for l in by_label if kinds[l] == "peer" and medians[l]]
    fastest_peer = min(peers) if peers else None
    print(f"### {NAMES.get(source, source)}, {n:,} rows (source {size / 1048576:,.1f} MB)")
    print()
    print(
        "| tool | runs ok | median wall s | rows/s | source MB/s | median peak RSS MiB "
        "| × floor | × fastest peer | Delta MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    # Floors first, then Tributary, then the peers; each group in the order the tools ran.
    rank = {"floor": 0, "floor-ref": 0, "tributary": 1, "peer": 2}
    labels = sorted(by_label, key=lambda l: (rank.get(kinds[l], 3), order.index(l) if l in order else len(order)))
    for label in labels:
        rs = by_label[label]
        ok = [r for r in rs if r["ok"]]
        count = f"{len(ok)}/{len(rs)}"
        if not ok:
            msg = next((r["message"] for r in rs if r["message"]), "failed")
            print(f"| {label} | {count} | failed: {msg.replace('|', '/')} | | | | | | |")
            continue
        secs = medians[label]
        rss_values = [r["rss"] for r in ok if r["rss"]]
        rss = f"{statistics.median(rss_values) / 1024:,.0f}" if rss_values else "–"
        out_values = [r["out"] for r in ok if r["out"]]
        out = f"{statistics.median(out_values) / 1048576:,.1f}" if out_values else ""
        vs_floor = vs_peer = ""
        if kinds[label] == "tributary":
            vs_floor = f"{secs / floor:.2f}" if floor else "–"
            vs_peer = f"{secs / fastest_peer[0]:.2f}" if fastest_peer else "–"
        print(
            f"| {label} | {count} | {secs:.2f} | {n / secs:,.0f} | {size / 1048576 / secs:,.1f} "
            f"| {rss} | {vs_floor} | {vs_peer} | {out} |"
        )
    # Failures of lines that also had successful runs (a line that always failed shows its
    # message in the table).
    failed = [
        (l, r["message"])
        for l in labels
        if any(r["ok"] for r in by_label[l])
        for r in by_label[l]
        if not r["ok"]
    ]
    print()
    if fastest_peer:
        print(f"Fastest peer: {fastest_peer[1]} ({fastest_peer[0]:.2f} s).")
    for label, message in dict(failed).items():
        print(f"Failed: {label}: {message}")
    print()

# The column types each tool wrote (the last run's), tools with the same types on one line.
schemas = {}
for line in open(schemas_path):
    source, label, codecs, schema = line.rstrip("\n").split("\t", 3)
    schemas.setdefault(source, {})[label] = f"{codecs}: `{schema}`"
for source in sorted(schemas, key=lambda s: s != "postgres"):
    print(f"Parquet codecs and Delta column types written, from {NAMES.get(source, source)}:")
    print()
    groups = {}
    for label, schema in schemas[source].items():
        groups.setdefault(schema, []).append(label)
    for schema, labels in groups.items():
        print(f"- {', '.join(labels)}: {schema}")
    print()
