"""Generate the model benchmark's input as Parquet files: N order rows (ids repeat: about 1.25
versions per order, so deduplication has work to do) and 50,000 customers."""
import sys
from pathlib import Path

import polars as pl

n = int(sys.argv[1])
out = Path(sys.argv[2])
(out / "orders").mkdir(parents=True, exist_ok=True)
(out / "customers").mkdir(parents=True, exist_ok=True)
ids = int(n * 0.8)
g = pl.int_range(0, n, eager=True, dtype=pl.Int64)
orders = pl.DataFrame({"g": g}).with_columns(
    id=(pl.col("g") % ids) + 1,
    customer_id=((pl.col("g") * 7919) % 50_000 + 1).cast(pl.Int32),
    status=pl.col("g").mod(4).replace_strict({0: "new", 1: "paid", 2: "shipped", 3: "returned"}, return_dtype=pl.Utf8),
    total=(((pl.col("g") * 31) % 100_000) / 100).cast(pl.Decimal(12, 2)),
    currency=pl.lit("EUR"),
    note=pl.when(pl.col("g") % 10 == 0).then(None).otherwise(pl.format("order note {}", pl.col("g"))),
    created_at=pl.datetime(2026, 1, 1, time_zone="UTC") + pl.duration(seconds=pl.col("g") % ids),
    updated_at=pl.datetime(2026, 1, 1, time_zone="UTC") + pl.duration(seconds=pl.col("g")),
).drop("g")
# Several files, as a real bronze table has.
parts = 8
step = (n + parts - 1) // parts
for i in range(parts):
    orders.slice(i * step, step).write_parquet(out / "orders" / f"part-{i}.parquet")
customers = pl.DataFrame({"id": pl.int_range(1, 50_001, eager=True, dtype=pl.Int32)}).with_columns(
    name=pl.format("Customer {}", pl.col("id")),
    country=pl.col("id").mod(5).replace_strict({0: "DE", 1: "FR", 2: "IT", 3: "ES", 4: "NL"}, return_dtype=pl.Utf8),
)
customers.write_parquet(out / "customers" / "customers.parquet")
