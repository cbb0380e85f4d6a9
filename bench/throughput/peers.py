"""Peer tools of bench/throughput.sh: each loads one whole source table into a new local Delta table.

    python peers.py TOOL SOURCE OUT        run one peer (timed by the caller with /usr/bin/time -v)
    python peers.py count DELTA_PATH       print a Delta table's rows, bytes, codecs, schema (not timed)
    python peers.py versions               print the peers' package versions, one "name version" a line

TOOL is one of connectorx, connectorx-p2, connectorx-stream, polars, dlt. SOURCE is `postgres` or
`mysql`: the URLs and table names below match the tables that bench/throughput.sh generates. OUT is
a folder that does not exist yet; every peer writes its Delta table to OUT/orders (dlt: below
OUT/bucket, see `run_dlt`) and prints the table's path on its last line of stdout.
"""

import os
import sys

# Source URLs as each library spells them. ConnectorX (and Polars through it) takes the plain
# URLs; dlt reflects the table with SQLAlchemy first, which needs a driver for MySQL.
CX_URL = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/bench",
}
SQLALCHEMY_URL = {
    "postgres": "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/bench",
}
TABLE = {"postgres": "bench.orders", "mysql": "orders"}
SCHEMA = {"postgres": "bench", "mysql": None}
QUERY = {s: f"SELECT * FROM {t}" for s, t in TABLE.items()}
# Rows per batch of the streaming reader: the same as Tributary's default database batch_size.
STREAM_BATCH_ROWS = 10_000


def run_connectorx(source, out, **kwargs):
    """ConnectorX reads the whole result into one Arrow table, then delta-rs writes it."""
    import connectorx as cx
    from deltalake import write_deltalake

    table = cx.read_sql(CX_URL[source], QUERY[source], return_type="arrow", **kwargs)
    path = os.path.join(out, "orders")
    write_deltalake(path, table)
    return path


def run_connectorx_stream(source, out):
    """ConnectorX's streaming reader (a RecordBatchReader of STREAM_BATCH_ROWS-row batches),
    written by delta-rs as it is read."""
    import connectorx as cx
    from deltalake import write_deltalake

    reader = cx.read_sql(
        CX_URL[source], QUERY[source], return_type="arrow_stream", batch_size=STREAM_BATCH_ROWS
    )
    path = os.path.join(out, "orders")
    write_deltalake(path, reader)
    return path


def run_polars(source, out):
    """Polars reads through ConnectorX into a DataFrame, then writes Delta (delta-rs underneath)."""
    import polars as pl

    df = pl.read_database_uri(QUERY[source], CX_URL[source], engine="connectorx")
    path = os.path.join(out, "orders")
    df.write_delta(path)
    return path


def run_dlt(source, out):
    """dlt's sql_table source with the ConnectorX backend into the filesystem destination as a
    Delta table, in a pipeline folder of its own (so every run is a full first load)."""
    import dlt
    from dlt.sources.sql_database import sql_table

    bucket = os.path.join(out, "bucket")
    table = sql_table(
        credentials=SQLALCHEMY_URL[source],
        table="orders",
        schema=SCHEMA[source],
        backend="connectorx",
        # ConnectorX gets the plain URL: it does not know SQLAlchemy's `+driver` suffixes.
        backend_kwargs={"conn": CX_URL[source]},
    )
    pipeline = dlt.pipeline(
        pipeline_name="throughput",
        pipelines_dir=os.path.join(out, "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=bucket),
        dataset_name="bench",
    )
    info = pipeline.run(table, table_format="delta", write_disposition="replace")
    info.raise_on_failed_jobs()
    return os.path.join(bucket, "bench", "orders")


def count(path):
    """The table's row count, its data files' total size in bytes, the Parquet codecs they use and
    its Arrow schema as one line ("name:type, …")."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    dt = DeltaTable(path)
    actions = dt.get_add_actions(flatten=True)
    rows = sum(actions.column("num_records").to_pylist())
    size = sum(actions.column("size_bytes").to_pylist())
    codecs = set()
    for uri in dt.file_uris():
        meta = pq.ParquetFile(uri.removeprefix("file://")).metadata
        codecs.update(
            meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        )
    schema = ", ".join(f"{f.name}:{f.type}" for f in pa.schema(dt.schema()))
    return rows, size, "+".join(sorted(codecs)).lower(), schema


def versions():
    from importlib.metadata import version

    for name in ("connectorx", "deltalake", "polars", "pyarrow", "dlt", "sqlalchemy"):
        try:
            print(name, version(name))
        except Exception:  # noqa: BLE001 - not installed
            print(name, "missing")


def main():
    cmd = sys.argv[1]
    if cmd == "count":
        for value in count(sys.argv[2]):
            print(value)
    elif cmd == "versions":
        versions()
    else:
        source, out = sys.argv[2], sys.argv[3]
        os.makedirs(out)
        runners = {
            "connectorx": lambda: run_connectorx(source, out),
            "connectorx-p2": lambda: run_connectorx(source, out, partition_on="id", partition_num=2),
            "connectorx-stream": lambda: run_connectorx_stream(source, out),
            "polars": lambda: run_polars(source, out),
            "dlt": lambda: run_dlt(source, out),
        }
        print(runners[cmd]())
    sys.stdout.flush()
    sys.stderr.flush()
    # delta-rs' and ConnectorX's native threads can abort interpreter shutdown after a correct
    # result (see the testkit's Python runner): leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
