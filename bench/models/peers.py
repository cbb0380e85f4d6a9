"""The benchmark's silver and gold steps in DuckDB or Polars, on the same Delta tables as Tributary
(the current files of each table, listed by the deltalake package), writing Delta with it.
The silver step keeps the same 8 columns as the Tributary model (not the bronze load metadata).

    python peers.py duckdb|polars silver|gold LAKE
"""
import sys

from deltalake import DeltaTable, write_deltalake

engine, step, lake = sys.argv[1], sys.argv[2], sys.argv[3]
orders = f"{lake}/bronze/orders"
customers = f"{lake}/bronze/customers"
silver = f"{lake}/peer_{engine}/silver"
out = f"{lake}/peer_{engine}/{step}"
COLS = ["id", "customer_id", "status", "total", "currency", "note", "created_at", "updated_at"]


def files(path):
    """The Parquet files of the table's current version, as a DuckDB list literal."""
    return "[" + ", ".join(f"'{f}'" for f in DeltaTable(path).file_uris()) + "]"


if engine == "duckdb":
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    if step == "silver":
        cols = ", ".join(COLS)
        sql = f"""SELECT {cols} FROM (
            SELECT {cols}, row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) AS rn
            FROM read_parquet({files(orders)})) WHERE rn = 1"""
    else:
        sql = f"""SELECT c.country, date_trunc('month', o.updated_at) AS month, count(*) AS orders, sum(o.total) AS revenue
            FROM read_parquet({files(silver)}) o
            JOIN read_parquet({files(customers)}) c ON c.id = o.customer_id
            GROUP BY 1, 2"""
    reader = con.sql(sql).to_arrow_reader(100_000)
    write_deltalake(out, reader, mode="overwrite")
else:
    import polars as pl

    if step == "silver":
        lf = pl.scan_delta(orders).select(COLS).sort("updated_at").unique(subset="id", keep="last")
    else:
        o = pl.scan_delta(silver)
        c = pl.scan_delta(customers)
        lf = (
            o.join(c, left_on="customer_id", right_on="id")
            .group_by("country", pl.col("updated_at").dt.truncate("1mo").alias("month"))
            .agg(pl.len().alias("orders"), pl.col("total").sum().alias("revenue"))
        )
    lf.collect().write_delta(out, mode="overwrite")
