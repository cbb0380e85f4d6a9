"""The benchmark's silver and gold steps in DuckDB or Polars, reading the same bronze Delta tables
(their Parquet files: each bronze table is one version) and writing Delta with the deltalake package.

    python peers.py duckdb|polars silver|gold LAKE
"""
import sys

from deltalake import write_deltalake

engine, step, lake = sys.argv[1], sys.argv[2], sys.argv[3]
orders = f"{lake}/bronze/orders"
customers = f"{lake}/bronze/customers"
out = f"{lake}/peer_{engine}/{step}"

if engine == "duckdb":
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    if step == "silver":
        sql = f"""SELECT * EXCLUDE (rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) AS rn
            FROM read_parquet('{orders}/*.parquet')) WHERE rn = 1"""
    else:
        sql = f"""SELECT c.country, date_trunc('month', o.updated_at) AS month, count(*) AS orders, sum(o.total) AS revenue
            FROM read_parquet('{lake}/peer_duckdb/silver/*.parquet') o
            JOIN read_parquet('{customers}/*.parquet') c ON c.id = o.customer_id
            GROUP BY 1, 2"""
    reader = con.execute(sql).fetch_record_batch(100_000)
    write_deltalake(out, reader, mode="overwrite")
else:
    import polars as pl

    if step == "silver":
        lf = pl.scan_parquet(f"{orders}/*.parquet").sort("updated_at").unique(subset="id", keep="last")
    else:
        o = pl.scan_parquet(f"{lake}/peer_polars/silver/*.parquet")
        c = pl.scan_parquet(f"{customers}/*.parquet")
        lf = (
            o.join(c, left_on="customer_id", right_on="id")
            .group_by("country", pl.col("updated_at").dt.truncate("1mo").alias("month"))
            .agg(pl.len().alias("orders"), pl.col("total").sum().alias("revenue"))
        )
    lf.collect().write_delta(out, mode="overwrite")
